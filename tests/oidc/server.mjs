// A real OpenID Connect provider (oidc-provider v9) for the gateway's auth tests.
//
// Usage: node server.mjs <port>        (issuer: http://127.0.0.1:<port>)
// Env:   OIDC_TEST_JWKS  JSON {"keys": [...private JWKs...]}; generated when absent.
//
// Besides the provider's own endpoints it serves a small admin API the tests drive:
//   POST /admin/keys   body {"keys": [...]}  replaces the signing keys (key rotation);
//                      the provider is rebuilt, so its /jwks publishes only the new set.
//   GET  /admin/stats  how often discovery and the JWKS were fetched, to show that junk
//                      tokens cannot make the gateway hammer the identity provider.
//   POST /admin/jwks-delay  body {"ms": n}  answers /jwks n ms late, so that concurrent
//                      requests really overlap one key fetch.
// It listens on 127.0.0.1 only and prints "ready <port>" once accepting connections.

import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? '0');
const CLIENT_ID = 'llm-gateway-tests';
const CLIENT_SECRET = 'llm-gateway-tests-secret';
const AUDIENCE = 'llm-gateway';
const SCOPES = 'llm:invoke llm:admin';

// Resource indicators the tests may ask for; each picks the audience and signing algorithm.
const RESOURCE_SERVERS = {
  'urn:llm-gateway': { audience: AUDIENCE, alg: 'RS256' },
  'urn:llm-gateway:ps256': { audience: AUDIENCE, alg: 'PS256' },
  'urn:llm-gateway:es256': { audience: AUDIENCE, alg: 'ES256' },
  'urn:other-service': { audience: 'other-service', alg: 'RS256' },
};

const stats = { discovery: 0, jwks: 0, token: 0 };
let jwksDelayMs = 0;

function generatedKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    keys: [
      { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'generated-rsa', use: 'sig' },
      { ...ec.privateKey.export({ format: 'jwk' }), kid: 'generated-ec', use: 'sig' },
    ],
  };
}

function buildProvider(issuer, jwks) {
  const provider = new Provider(issuer, {
    jwks,
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    }],
    scopes: SCOPES.split(' '),
    cookies: { keys: ['llm-gateway-tests-cookie-key'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => 'urn:llm-gateway',
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          const server = RESOURCE_SERVERS[resourceIndicator];
          if (!server) throw new Provider.errors.InvalidTarget();
          return {
            scope: SCOPES,
            audience: server.audience,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: server.alg } },
          };
        },
      },
    },
  });
  provider.use(async (ctx, next) => {
    if (ctx.path === '/.well-known/openid-configuration') stats.discovery += 1;
    if (ctx.path === '/jwks') {
      stats.jwks += 1;
      if (jwksDelayMs > 0) await new Promise((resolve) => { setTimeout(resolve, jwksDelayMs); });
    }
    if (ctx.path === '/token') stats.token += 1;
    await next();
  });
  return provider;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function main() {
  const jwks = process.env.OIDC_TEST_JWKS
    ? JSON.parse(process.env.OIDC_TEST_JWKS)
    : generatedKeys();
  let issuer;
  let handler;

  const server = http.createServer(async (req, res) => {
    try {
      if (req.url === '/admin/stats' && req.method === 'GET') {
        sendJson(res, 200, stats);
      } else if (req.url === '/admin/jwks-delay' && req.method === 'POST') {
        jwksDelayMs = Number(JSON.parse(await readBody(req)).ms);
        sendJson(res, 200, { ms: jwksDelayMs });
      } else if (req.url === '/admin/keys' && req.method === 'POST') {
        const body = JSON.parse(await readBody(req));
        handler = buildProvider(issuer, body).callback();
        sendJson(res, 200, { kids: body.keys.map((key) => key.kid) });
      } else {
        handler(req, res);
      }
    } catch (err) {
      sendJson(res, 500, { error: String(err) });
    }
  });

  server.listen(port, '127.0.0.1', () => {
    const actual = server.address().port;
    issuer = `http://127.0.0.1:${actual}`;
    handler = buildProvider(issuer, jwks).callback();
    process.stdout.write(`ready ${actual}\n`);
  });

  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
