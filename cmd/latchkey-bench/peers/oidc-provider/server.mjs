// oidc-provider 9.13.x peer for latchkey-bench, as close to its defaults as
// the load tool allows: in-memory adapter, dev keystore (one RSA-2048 key,
// RS256 ID tokens), opaque access/refresh tokens, devInteractions (the
// built-in login and consent pages), default interaction policy and
// loadExistingGrant. Changed from the defaults, and why:
//   - one static confidential client "bench" (client_secret_basic);
//   - cookies.keys set (signed cookies, as any deployment would);
//   - features.introspection and features.revocation enabled;
//   - rotateRefreshToken always true: every refresh grant rotates, like
//     Latchkey (the default rotates only for public clients or after 70% of
//     the token's TTL);
//   - FORM SHIM (see formShim below; BENCH_FORM_SHIM=0 turns it off,
//     BENCH_FORM_SHIM=login keeps only the login half): two
//     tiny rewrites of the devInteractions pages so that latchkey-bench's
//     generic form driver (internal/flow) can get through them. It only
//     touches /interaction/* requests: refresh/introspect never hit them
//     after setup; code mode with -prompt consent shows the consent page
//     (and so runs the shim) on every iteration.
// The load tool must pass -prompt consent: oidc-provider drops
// offline_access (so issues no refresh token) unless prompt has consent.
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const { version } = JSON.parse(readFileSync(new URL('./node_modules/oidc-provider/package.json', import.meta.url)));

const PORT = Number(process.env.PORT || 3000);
const ISSUER = process.env.ISSUER || `http://127.0.0.1:${PORT}`;
const SECRET = process.env.BENCH_SECRET || 'bench-secret-0123456789abcdef0123456789abcdef';

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: 'bench',
    client_secret: SECRET,
    redirect_uris: ['http://localhost:9999/cb'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  cookies: { keys: [process.env.COOKIE_KEY || 'bench-cookie-key-0123456789abcdef'] },
  features: {
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  rotateRefreshToken: () => true,
});

// formShim adapts the devInteractions pages to internal/flow's generic
// driver, which (a) fills the password form's fields "username" and
// "password" — the dev login form calls the login field "login" — and (b)
// presses a submit button named "decision" with value "allow" — the dev
// consent form's only button has no name.
function formShim() {
  return async (ctx, next) => {
    if (!ctx.path.startsWith('/interaction/')) return next();
    if (ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
      // (a) username -> login. The body is read here and handed on as
      // ctx.req.body, which oidc-provider's body parser accepts.
      const chunks = [];
      for await (const c of ctx.req) chunks.push(c);
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      if (form.has('username') && !form.get('login')) form.set('login', form.get('username'));
      ctx.req.body = form.toString();
      return next();
    }
    await next();
    // (b) name the consent page's Continue button decision=allow.
    if (process.env.BENCH_FORM_SHIM === 'login') return;
    if (typeof ctx.body === 'string' && ctx.body.includes('name="prompt" value="consent"')) {
      ctx.body = ctx.body.replace('<button autofocus type="submit"', '<button autofocus type="submit" name="decision" value="allow"');
    }
  };
}
if (process.env.BENCH_FORM_SHIM !== '0') provider.use(formShim());

// Log the cause of server_error answers (the default error page hides it).
provider.on('server_error', (ctx, err) => console.error('server_error', ctx.method, ctx.path, err));

provider.listen(PORT, '127.0.0.1', () => {
  console.log(`oidc-provider ${version} (node ${process.version}) listening on ${ISSUER} (pid ${process.pid}, NODE_ENV=${process.env.NODE_ENV ?? ''}, form shim ${{ 0: 'off', login: 'login only' }[process.env.BENCH_FORM_SHIM] ?? 'on'})`);
});
