// Runs an OpenID Connect sign-in against Sesame with openid-client, configured from the
// discovery document alone. Protocol, one JSON object per line:
//   stdout {"authorization_url": ...}   the test signs the user in and approves
//   stdin  {"callback_url": ...}        where the browser landed
//   stdout {"id_token_header": ..., "id_token_claims": ..., "jwks_kids": ...,
//           "introspection": ..., "userinfo": ..., "after_revocation": ...}
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI.

import * as client from "openid-client";
import * as readline from "node:readline";

const { ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI } = process.env;

const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));

// The test server speaks plain HTTP on loopback. By default openid-client 6.9 checks only
// the ID token's claims, because TLS on the token endpoint already authenticates the issuer.
// enableNonRepudiationChecks makes it also verify the signature with a key from the
// discovered jwks_uri.
const config = await client.discovery(new URL(ISSUER), CLIENT_ID, CLIENT_SECRET, undefined, {
  execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
});

const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const nonce = client.randomNonce();
const state = client.randomState();
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: REDIRECT_URI,
  scope: "openid profile read",
  code_challenge: challenge,
  code_challenge_method: "S256",
  nonce,
  state,
});
console.log(JSON.stringify({ authorization_url: authorizationUrl.href }));

const { callback_url: callbackUrl } = JSON.parse(await nextLine());
const tokens = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
  pkceCodeVerifier: verifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
});
const claims = tokens.claims();
const idTokenHeader = JSON.parse(
  Buffer.from(tokens.id_token.split(".")[0], "base64url").toString("utf8"),
);
// With this configuration openid-client fetches the JWKS, which fills the cache that
// getJwksCache returns, only to verify the ID token's signature.
const jwksKids = client.getJwksCache(config)?.jwks.keys.map((key) => key.kid) ?? [];
const introspection = await client.tokenIntrospection(config, tokens.access_token);
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
await client.tokenRevocation(config, tokens.refresh_token, { token_type_hint: "refresh_token" });
const afterRevocation = await client.tokenIntrospection(config, tokens.access_token);

console.log(
  JSON.stringify({
    id_token_header: idTokenHeader,
    id_token_claims: claims,
    jwks_kids: jwksKids,
    introspection,
    userinfo,
    after_revocation: afterRevocation,
  }),
);
lines.close();
