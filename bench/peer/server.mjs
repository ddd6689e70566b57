// The peer in bench/run: panva's oidc-provider issuing JWT access tokens (RFC 9068) for the
// client_credentials grant, signed with the same PEM key Sesame uses. Nothing is stored per
// token, because JWT access tokens need no storage in oidc-provider.
//
// Environment: PEER_PORT, PEER_KEY_FILE (PKCS#8 PEM), PEER_ALG (RS256 or ES256),
// PEER_CLIENT_ID, PEER_CLIENT_SECRET.
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
const alg = process.env.PEER_ALG;
const audience = 'https://api.bench.invalid';
const issuer = `http://127.0.0.1:${port}`;

const jwk = createPrivateKey(readFileSync(process.env.PEER_KEY_FILE, 'utf8')).export({
  format: 'jwk',
});
jwk.alg = alg;
jwk.use = 'sig';
jwk.kid = 'bench';

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [
    {
      client_id: process.env.PEER_CLIENT_ID,
      client_secret: process.env.PEER_CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      // oidc-provider signs JWT access tokens with this algorithm unless the resource server
      // names one.
      id_token_signed_response_alg: alg,
    },
  ],
  enabledJWA: { idTokenSigningAlgValues: [alg] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read',
        audience,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg } },
      }),
    },
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`peer listening on ${issuer}`);
});
