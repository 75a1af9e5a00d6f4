// A real OpenID provider for the OAuth tests: panva's `oidc-provider` on
// 127.0.0.1, with dynamic client registration, PKCE, resource indicators
// (RFC 8707) issuing JWT access tokens whose `aud` is the resource, and a
// login and consent that approve by themselves (user `alice`, or the
// `login_hint`). Test hooks, outside the provider's own routes:
//   GET  /__rotate?sign=KID&publish=KID,KID   which key signs, which are published
//   POST /__mint {claims, kid?, alg?, unpublished?}   a token signed by the provider's key
//        (alg "HS256" uses the published public JWK's JSON as the HMAC secret)
//   GET  /__exchanges                          how many token exchanges were granted
//   POST /__opaque {sub?, scope?, audience?}   an opaque access token, for introspection
//        (RFC 7662 at /token/introspection; client `warden-exchange` may introspect)
// Token exchange (RFC 8693), registered with the provider's own
// `registerGrantType`: the client `warden-exchange` (secret
// `exchange-secret`, HTTP Basic) trades an access token for this resource
// (verified against the provider's keys) for one whose `aud` is --upstream,
// same `sub`, `act.sub` the client; a subject token with `no_exchange`
// is refused (invalid_grant).
// Usage: node oidc-provider.mjs --port 0 --resource URL [--upstream URL] [--scopes "a b"]
// Prints `PORT <n>` once listening; exits when stdin closes.
import Provider, { errors } from 'oidc-provider';
import { generateKeyPair, exportJWK, importJWK, jwtVerify, SignJWT } from 'jose';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const RESOURCE = args.resource;
const UPSTREAM = args.upstream;
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
let exchanges = 0;
const SCOPES = (args.scopes ?? 'mcp:tools').split(' ');

const keys = {};
const privateKeys = {};
for (const kid of ['k1', 'k2', 'k3']) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  privateKeys[kid] = privateKey;
  keys[kid] = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}
let signKid = 'k1';
let published = ['k1'];
const publicJwk = (kid) => { const { d, p, q, dp, dq, qi, ...pub } = keys[kid]; return pub; };

const server = (await import('node:http')).createServer();
server.listen(Number(args.port ?? 0), '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const port = server.address().port;
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  jwks: { keys: Object.values(keys) },
  scopes: ['openid', 'offline_access', ...SCOPES],
  pkce: { required: () => true },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  clients: [{
    client_id: 'warden-exchange', client_secret: 'exchange-secret',
    grant_types: [TOKEN_EXCHANGE], redirect_uris: [], response_types: [],
  }],
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, indicator) => {
        if (indicator !== RESOURCE && indicator !== UPSTREAM) throw new errors.InvalidTarget();
        return { scope: SCOPES.join(' '), accessTokenFormat: 'jwt', accessTokenTTL: 300,
                 jwt: { sign: { alg: 'RS256', kid: signKid } } };
      },
    },
  },
});
provider.proxy = false;

provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const p = ctx.oidc.params;
  if (p.subject_token_type !== ACCESS_TOKEN) throw new errors.InvalidRequest('subject_token_type must be an access token');
  let subject;
  try {
    ({ payload: subject } = await jwtVerify(p.subject_token,
      async (header) => importJWK(publicJwk(header.kid), 'RS256'),
      { issuer, audience: RESOURCE, algorithms: ['RS256'] }));
  } catch (e) {
    throw new errors.InvalidGrant(`subject_token: ${e.message}`);
  }
  if (subject.no_exchange) throw new errors.InvalidGrant('this subject may not be exchanged');
  const audience = p.audience ?? p.resource;
  if (!UPSTREAM || audience !== UPSTREAM) throw new errors.InvalidTarget();
  exchanges += 1;
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: issuer, aud: audience, sub: subject.sub, iat: now, exp: now + 300,
                   scope: p.scope ?? '', act: { sub: ctx.oidc.client.clientId } };
  const token = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: signKid, typ: 'at+jwt' })
    .sign(privateKeys[signKid]);
  ctx.body = { access_token: token, issued_token_type: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 300 };
}, ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope'], ['audience', 'resource']);

async function body(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : {};
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__rotate') {
    signKid = ctx.query.sign;
    published = String(ctx.query.publish).split(',');
    ctx.body = { sign: signKid, published };
    return;
  }
  if (ctx.path === '/__opaque' && ctx.method === 'POST') {
    const { sub = 'alice', scope = SCOPES.join(' '), audience = RESOURCE } = await body(ctx.req);
    const client = await provider.Client.find('warden-exchange');
    const token = new provider.AccessToken({
      accountId: sub, client, scope, expiresIn: 300,
      resourceServer: { audience, scope, accessTokenFormat: 'opaque' },
    });
    ctx.body = await token.save();
    return;
  }
  if (ctx.path === '/__exchanges') {
    ctx.body = { exchanges };
    return;
  }
  if (ctx.path === '/__mint' && ctx.method === 'POST') {
    const { claims, kid = signKid, alg = 'RS256' } = await body(ctx.req);
    const now = Math.floor(Date.now() / 1000);
    const full = { iss: issuer, aud: RESOURCE, sub: 'alice', iat: now, exp: now + 300, scope: SCOPES.join(' '), ...claims };
    for (const [k, v] of Object.entries(full)) if (v === null) delete full[k];
    const secret = alg === 'HS256' ? new TextEncoder().encode(JSON.stringify(publicJwk(kid))) : privateKeys[kid];
    ctx.body = await new SignJWT(full).setProtectedHeader({ alg, kid, typ: 'at+jwt' }).sign(secret);
    return;
  }
  if (ctx.path === '/jwks') {
    await next();
    ctx.body.keys = ctx.body.keys.filter((k) => published.includes(k.kid));
    return;
  }
  if (!/^\/interaction\/[^/]+$/.test(ctx.path)) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: details.params.login_hint || 'alice' } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    for (const [r, s] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(r, s.join(' '));
    result = { consent: { grantId: await grant.save() } };
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: details.prompt.name !== 'login' });
  ctx.status = 303;
  ctx.redirect(to);
});

server.on('request', provider.callback());
console.log(`PORT ${port}`);
// The test reads only that line: everything after goes to stderr.
console.log = console.info = (...a) => console.error(...a);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
