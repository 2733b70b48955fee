// A real OpenID provider for the OIDC bridge's tests: `oidc-provider` (OpenID Certified), configured with one
// client per signing algorithm. Besides the provider's own endpoints (discovery, JWKS), `/test/id-token` has the
// provider issue an ID token through its own `IdToken` model (the code its token endpoint uses), `/test/signed`
// signs any header and claims with its RS256 key, and `/test/jwks-fetches` counts the JWKS requests. `PORT`; `KEYS_FILE`, the signing keys, made there when it does not
// exist (a second provider given the same file signs with the same keys); `ISSUER_PORT` to claim another issuer.
import http from 'node:http';
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${process.env.ISSUER_PORT || port}`;
const keysFile = process.env.KEYS_FILE;
if (!existsSync(keysFile)) {
  const jwk = (kid, alg, pair) => ({ ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' });
  writeFileSync(keysFile, JSON.stringify([
    jwk('rs-1', 'RS256', generateKeyPairSync('rsa', { modulusLength: 2048 })),
    jwk('es-1', 'ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' })),
    jwk('ed-1', 'EdDSA', generateKeyPairSync('ed25519')),
  ]));
}
const keys = JSON.parse(readFileSync(keysFile));

const clients = [['RS256', 'tiledesk-rs'], ['ES256', 'tiledesk-es'], ['EdDSA', 'tiledesk-ed']].map(([alg, id]) => ({
  client_id: id,
  client_secret: 'a-client-secret-the-tests-never-use',
  redirect_uris: ['https://shop.example/callback'],
  id_token_signed_response_alg: alg,
}));

const provider = new Provider(issuer, {
  clients,
  jwks: { keys },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'] },
  features: { devInteractions: { enabled: false } },
  ttl: { IdToken: 3600 },
  cookies: { keys: ['a-cookie-key-the-tests-never-use'] },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});

let jwksFetches = 0;
const callback = provider.callback();

http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/jwks') jwksFetches += 1;
  if (url.pathname === '/test/jwks-fetches') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ fetches: jwksFetches }));
    return;
  }
  if (url.pathname === '/test/signed') {
    // Any header and claims, signed with the provider's RS256 key (`rs-1`): for what the provider's own IdToken
    // never writes (a string `email_verified`, `azp`, several audiences, an access token's `typ`). `iss`, `iat` and
    // a 10-minute `exp` unless the claims say otherwise.
    const q = Object.fromEntries(url.searchParams);
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', kid: 'rs-1', ...JSON.parse(q.header || '{}') };
    const claims = { iss: issuer, iat: now, exp: now + 600, ...JSON.parse(q.claims || '{}') };
    const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const input = `${part(header)}.${part(claims)}`;
    const { kid, alg, use, ...jwk } = keys.find((key) => key.kid === 'rs-1');
    const signature = sign('sha256', Buffer.from(input), createPrivateKey({ key: jwk, format: 'jwk' }));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ token: `${input}.${signature.toString('base64url')}` }));
    return;
  }
  if (url.pathname === '/test/id-token') {
    try {
      const q = Object.fromEntries(url.searchParams);
      const client = await provider.Client.find(q.client);
      const claims = { sub: q.sub };
      if (q.email) claims.email = q.email;
      if (q.email_verified) claims.email_verified = q.email_verified === 'true';
      if (q.given_name) claims.given_name = q.given_name;
      if (q.family_name) claims.family_name = q.family_name;
      const token = new provider.IdToken(claims, { client });
      token.scope = 'openid email profile';
      const expiresAt = q.expires_at ? Number(q.expires_at) : undefined;
      const idToken = await token.issue({ use: 'idtoken', expiresAt });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id_token: idToken }));
    } catch (err) {
      res.statusCode = 500;
      res.end(String(err && err.stack));
    }
    return;
  }
  callback(req, res);
}).listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
