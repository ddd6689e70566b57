//! The built-in user store's operations.

use crate::app::Sesame;
use crate::error::{Error, Result};

/// The maximum length of a user name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

impl Sesame {
    /// Adds a user. The password, if any, is stored as an Argon2id hash.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty or overlong name or an empty password,
    /// [`Error::UserExists`] when the name is taken.
    pub async fn add_user(
        &self,
        name: &str,
        email: Option<&str>,
        password: Option<&str>,
    ) -> Result<i64> {
        let valid_name = !name.is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && !name.chars().any(|c| c.is_control() || c.is_whitespace());
        if !valid_name {
            return Err(Error::InvalidInput(format!(
                "a user name must be 1 to {MAX_NAME_CHARS} characters without spaces"
            )));
        }
        // `--user ID_OR_NAME` reads digits as an id, so an all-digit name could never be chosen.
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidInput(format!(
                "user name {name:?} is all digits, which reads as a user id; add a letter"
            )));
        }
        let hash = match password {
            Some("") => return Err(Error::InvalidInput("the password is empty".into())),
            Some(password) => Some(self.hasher().hash(password.to_owned()).await?),
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
}
