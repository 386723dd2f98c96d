// tests/integration/npm/tls.js: TLS through Node.js drivers that do not use libpq
// (node's own TLS stack, OpenSSL): node-postgres (`pg`) and postgres.js (`postgres`),
// each with ssl: { ca, rejectUnauthorized: true } (the certificate must chain to CA
// and name the host: 127.0.0.1, an IP SAN). For each driver:
//   verified   one client: SELECT current_user, then a 1 MB value (many TLS records)
//   parallel   8 connections at once (pg: 8 clients; postgres.js: max 8), 40 queries
//   wrong-ca   the same with OTHER_CA as the only CA: must fail with a certificate error
//   pg only: the socket really is a TLS socket after connect.
// Prints one JSON line {ok, drivers: {pg: {...}, postgres: {...}}}; exit 0 when ok.
//   node tls.js PORT CA_FILE OTHER_CA_FILE [USER PASSWORD DATABASE]
'use strict';
const fs = require('fs');
const tls = require('tls');
const pg = require('./node_modules/pg');
const postgres = require('./node_modules/postgres');

const [portArg, caFile, otherCaFile, user = 'app', password = 'app', database = 'app'] = process.argv.slice(2);
if (!portArg || !caFile || !otherCaFile) {
  console.error('usage: node tls.js PORT CA_FILE OTHER_CA_FILE [USER PASSWORD DATABASE]');
  process.exit(2);
}
const port = Number(portArg);
const host = '127.0.0.1';
const ca = fs.readFileSync(caFile, 'utf8');
const otherCa = fs.readFileSync(otherCaFile, 'utf8');
const BIG = 1000000;

const msg = e => `${e && e.code ? e.code + ' ' : ''}${e && e.message ? e.message : String(e)}`;
// Within ms, or a timeout error (a hang must not hang the test).
const within = (p, ms, what) => Promise.race([
  p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms).unref()),
]);
// node's certificate verification errors.
const certError = e => /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|certificate/i.test(msg(e));

async function withPg() {
  const r = { verified: null, parallel: null, wrong_ca: null, tls_socket: null };
  const cfg = extra => ({ host, port, user, password, database, ssl: { ca, rejectUnauthorized: true }, ...extra });
  // verified
  try {
    const c = new pg.Client(cfg());
    await within(c.connect(), 15000, 'pg connect');
    const s = c.connection && c.connection.stream;
    r.tls_socket = !!(s && s instanceof tls.TLSSocket && s.encrypted) ?
      `${s.getProtocol()} ${s.getCipher().name}` : false;
    const a = await within(c.query('SELECT current_user AS u'), 15000, 'pg query');
    const b = await within(c.query('SELECT repeat($1::text, $2::int) AS x', ['x', BIG]), 15000, 'pg big');
    await c.end();
    r.verified = a.rows[0].u === user && b.rows[0].x.length === BIG && /^x+$/.test(b.rows[0].x) ? 'ok'
      : `wrong answer: ${JSON.stringify(a.rows)} / length ${b.rows[0].x.length}`;
  } catch (e) { r.verified = `error: ${msg(e)}`; }
  // parallel
  try {
    const clients = Array.from({ length: 8 }, () => new pg.Client(cfg()));
    await within(Promise.all(clients.map(c => c.connect())), 20000, 'pg connect x8');
    let wrong = 0;
    await within(Promise.all(clients.map(async (c, i) => {
      for (let k = 0; k < 5; k++) {
        const q = await c.query('SELECT $1::int * 2 AS v', [i * 10 + k]);
        if (q.rows[0].v !== (i * 10 + k) * 2) wrong++;
      }
    })), 20000, 'pg queries x8');
    await Promise.all(clients.map(c => c.end()));
    r.parallel = wrong === 0 ? 'ok' : `${wrong} wrong answers`;
  } catch (e) { r.parallel = `error: ${msg(e)}`; }
  // wrong-ca
  try {
    const c = new pg.Client(cfg({ ssl: { ca: otherCa, rejectUnauthorized: true } }));
    c.on('error', () => {});
    await within(c.connect(), 15000, 'pg connect (wrong CA)');
    await c.end();
    r.wrong_ca = 'CONNECTED although the certificate does not chain to the CA';
  } catch (e) { r.wrong_ca = certError(e) ? 'refused' : `failed, but not for the certificate: ${msg(e)}`; }
  r.ok = r.verified === 'ok' && r.parallel === 'ok' && r.wrong_ca === 'refused' && !!r.tls_socket;
  return r;
}

async function withPostgresJs() {
  const r = { verified: null, parallel: null, wrong_ca: null };
  const conn = extra => postgres({
    host, port, user, password, database, ssl: { ca, rejectUnauthorized: true },
    // prepare: false: unnamed statements (still pipelined), so that the result is about
    // TLS and not about prepared statements (PgBouncer 1.18 does not track them)
    onnotice: () => {}, connect_timeout: 15, idle_timeout: 1, prepare: false, ...extra,
  });
  // verified
  try {
    const sql = conn({ max: 1 });
    const a = await within(sql`SELECT current_user AS u`, 15000, 'postgres.js query');
    const b = await within(sql`SELECT repeat('x', ${BIG}::int) AS x`, 15000, 'postgres.js big');
    await sql.end({ timeout: 5 });
    r.verified = a[0].u === user && b[0].x.length === BIG && /^x+$/.test(b[0].x) ? 'ok'
      : `wrong answer: ${JSON.stringify(a)} / length ${b[0].x.length}`;
  } catch (e) { r.verified = `error: ${msg(e)}`; }
  // parallel: 40 queries on up to 8 connections (postgres.js pipelines them)
  try {
    const sql = conn({ max: 8 });
    let wrong = 0;
    await within(Promise.all(Array.from({ length: 40 }, (_, i) =>
      sql`SELECT ${i}::int * 2 AS v, pg_sleep(0.01)`.then(q => { if (q[0].v !== i * 2) wrong++; }))),
    20000, 'postgres.js x40');
    await sql.end({ timeout: 5 });
    r.parallel = wrong === 0 ? 'ok' : `${wrong} wrong answers`;
  } catch (e) { r.parallel = `error: ${msg(e)}`; }
  // wrong-ca
  try {
    const sql = conn({ max: 1, ssl: { ca: otherCa, rejectUnauthorized: true } });
    await within(sql`SELECT 1`, 15000, 'postgres.js (wrong CA)');
    await sql.end({ timeout: 1 });
    r.wrong_ca = 'CONNECTED although the certificate does not chain to the CA';
  } catch (e) { r.wrong_ca = certError(e) ? 'refused' : `failed, but not for the certificate: ${msg(e)}`; }
  r.ok = r.verified === 'ok' && r.parallel === 'ok' && r.wrong_ca === 'refused';
  return r;
}

(async () => {
  const t0 = Date.now();
  const drivers = { pg: await withPg(), postgres: await withPostgresJs() };
  const ok = drivers.pg.ok && drivers.postgres.ok;
  console.log(JSON.stringify({ ok, elapsed_ms: Date.now() - t0, drivers }));
  process.exit(ok ? 0 : 1);
})().catch(e => { console.log(JSON.stringify({ ok: false, fatal: msg(e) })); process.exit(1); });
