//! The built-in user store's operations.

use crate::app::Sesame;
use crate::error::{Error, Result};
use crate::store::{EndedAccess, UserRecord};

/// The maximum length of a user name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// The maximum length of an email address, in characters (RFC 5321 §4.5.3.1.3 limits a path
/// to 256 octets with its angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Returns the key that counts failed sign-ins as `name`, on the sign-in page and in the
/// password grant. A name longer than any user name can be is keyed by its SHA-256 hash, so
/// that a typed name of kilobytes still fits every backend's index on the key.
pub(crate) fn sign_in_attempt_key(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        format!("login:user:{name}")
    } else {
        format!("login:user:{}", crate::token::secret::hash_secret(name))
    }
}

/// Checks an email address given for a user: at most [`MAX_EMAIL_CHARS`] characters, with
/// text on both sides of one `@`, and no spaces, control or invisible formatting characters,
/// nor any of `<>()[],;:"\`. The address is shown by `user list` and sent in ID tokens and
/// userinfo.
fn check_email(email: &str) -> Result<()> {
    let shaped = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    });
    // Characters that RFC 5322 allows only in quoted local parts, and that would be markup or
    // address-list syntax wherever the address is shown.
    let special = |c: char| {
        matches!(
            c,
            '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '"' | '\\'
        )
    };
    let clean = !email
        .chars()
        .any(|c| c.is_whitespace() || special(c) || crate::names::is_forbidden_in_name(c));
    if shaped && clean && email.chars().count() <= MAX_EMAIL_CHARS {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "invalid email address {email:?}: it needs text on both sides of one @, at most \
         {MAX_EMAIL_CHARS} characters, and no spaces, control characters or <>()[],;:\"\\"
    )))
}

impl Sesame {
    /// Adds a user. The password, if any, is stored as an Argon2id hash.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty or overlong name, a malformed email address, or an
    /// empty password or one with a control character; [`Error::UserExists`] when the name is
    /// taken.
    pub async fn add_user(
        &self,
        name: &str,
        email: Option<&str>,
        password: Option<&str>,
    ) -> Result<i64> {
        let valid_name = !name.is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && !name
                .chars()
                .any(|c| c.is_whitespace() || crate::names::is_forbidden_in_name(c));
        if !valid_name {
            return Err(Error::InvalidInput(format!(
                "a user name must be 1 to {MAX_NAME_CHARS} characters without spaces, control or \
                 invisible formatting characters"
            )));
        }
        // `--user ID_OR_NAME` reads digits as an id, so an all-digit name could never be chosen.
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidInput(format!(
                "user name {name:?} is all digits, which reads as a user id; add a letter"
            )));
        }
        if let Some(email) = email {
            check_email(email)?;
        }
        let hash = match password {
            Some(password) => {
                check_password(password)?;
                Some(self.hasher().hash(password.to_owned()).await?)
            }
            None => None,
        };
        let id = self
            .store()
            .insert_user(name, email, hash.as_deref(), self.now())
            .await?;
        tracing::info!(user_id = id, "added user");
        Ok(id)
    }

    /// Finds a user by numeric id or by name; digits are tried as an id first.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when neither matches.
    pub async fn find_user(&self, id_or_name: &str) -> Result<crate::store::UserRecord> {
        if let Ok(id) = id_or_name.parse::<i64>()
            && let Some(user) = self.store().user(id).await?
        {
            return Ok(user);
        }
        self.store()
            .user_by_name(id_or_name)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "user",
                id: id_or_name.to_owned(),
            })
    }

    /// Disables a user and ends their access at once: tokens (personal access tokens
    /// included) and unused authorization codes are revoked and browser sessions deleted.
    /// Disabled users cannot sign in or use the password grant, and a device code they
    /// approved gets `invalid_grant` when polled. Disabling a disabled user revokes again.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown user.
    pub async fn disable_user(&self, id_or_name: &str) -> Result<(UserRecord, EndedAccess)> {
        let user = self.find_user(id_or_name).await?;
        let now = self.now();
        let store = self.store();
        let mut transaction = store.begin_write().await?;
        store
            .set_user_disabled(&mut transaction, user.id, true, now)
            .await?;
        let ended = store
            .end_user_access(&mut transaction, user.id, false, now)
            .await?;
        transaction.commit().await?;
        tracing::info!(
            user_id = user.id,
            access_tokens = ended.access_tokens,
            refresh_tokens = ended.refresh_tokens,
            sessions = ended.sessions,
            "disabled user"
        );
        Ok((user, ended))
    }

    /// Enables a disabled user. Tokens revoked when the user was disabled stay revoked.
    ///
    /// Enabling also revokes every token, code and session the user still has. A token that
    /// was being issued while `disable_user` ran can reach the database after that transaction
    /// and stay unrevoked. The guard rejects it while the user is disabled, and this revokes it
    /// before the user becomes active again. Enabling an active user changes nothing. The user
    /// row is updated first, as `disable_user` does, so on PostgreSQL and MySQL the two take
    /// their row locks in the same order and do not deadlock on each other.
    ///
    /// NOTE: a row that arrives after this transaction commits, from a request that checked
    /// the user before the disable, is not revoked.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown user.
    pub async fn enable_user(&self, id_or_name: &str) -> Result<UserRecord> {
        let user = self.find_user(id_or_name).await?;
        let now = self.now();
        let store = self.store();
        let mut transaction = store.begin_write().await?;
        if !store
            .enable_disabled_user(&mut transaction, user.id, now)
            .await?
        {
            transaction.commit().await?;
            return Ok(user);
        }
        let ended = store
            .end_user_access(&mut transaction, user.id, true, now)
            .await?;
        transaction.commit().await?;
        tracing::info!(
            user_id = user.id,
            access_tokens = ended.access_tokens,
            refresh_tokens = ended.refresh_tokens,
            authorization_codes = ended.authorization_codes,
            device_codes = ended.device_codes,
            sessions = ended.sessions,
            "enabled user"
        );
        Ok(user)
    }

    /// Replaces a user's password and ends their access as [`Sesame::disable_user`] does,
    /// because a password is usually changed when the old one may be known to someone else.
    /// Device codes the user approved that no device has exchanged yet become denied.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown user, [`Error::InvalidInput`] for an empty password
    /// or one with a control character.
    pub async fn set_user_password(
        &self,
        id_or_name: &str,
        password: &str,
    ) -> Result<(UserRecord, EndedAccess)> {
        let user = self.find_user(id_or_name).await?;
        check_password(password)?;
        let hash = self.hasher().hash(password.to_owned()).await?;
        let now = self.now();
        let store = self.store();
        let mut transaction = store.begin_write().await?;
        store
            .set_user_password(&mut transaction, user.id, &hash, now)
            .await?;
        // NOTE: a token whose request checked the user before this commit and stores its row
        // after it (the token writer batches inserts) is not revoked here.
        let ended = store
            .end_user_access(&mut transaction, user.id, true, now)
            .await?;
        transaction.commit().await?;
        tracing::info!(
            user_id = user.id,
            access_tokens = ended.access_tokens,
            refresh_tokens = ended.refresh_tokens,
            sessions = ended.sessions,
            "changed user password"
        );
        Ok((user, ended))
    }
}

/// Rejects a password that no sign-in form can send: an empty one, or one with a control
/// character such as NUL.
fn check_password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(Error::InvalidInput("the password is empty".into()));
    }
    if password.chars().any(char::is_control) {
        return Err(Error::InvalidInput(
            "the password contains a control character, which no sign-in form can send".into(),
        ));
    }
    Ok(())
}
