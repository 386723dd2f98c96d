#!/usr/bin/env node
// tests/integration/npm/prepared.js: protocol-level prepared statements through two
// Node.js drivers that do not use libpq, many concurrent clients, every answer checked.
//
//   node prepared.js [--url postgres://app:app@127.0.0.1:6432/app | --host H --port P
//                    --user U --password W --dbname D] [--clients 20] [--iterations 40]
//                    [--drivers pg,postgres] [--spread 12] [--timeout 240] [--step-timeout 15]
//                    [--no-setup]
//
// Drivers (both speak the protocol themselves):
//   pg        node-postgres: named statements via client.query({name, text, values})
//             (Parse once per connection, then Bind/Execute only).
//   postgres  postgres.js: prepares every query by default under a random per-connection
//             name (Parse + Describe + Flush, then Bind/Execute/Sync), pipelines
//             concurrent queries on one connection.
//
// Each driver opens --clients connections (one each) and runs --iterations rounds in
// each, all clients of both drivers at once. A round (client c, round i):
//   - the same statement text in every client (pg: same name too)
//   - a statement on a shared lookup table
//   - the same statement NAME with a different text in every client (pg), a
//     statement text unique to the client
//   - one of --spread statements with texts unique to the client (20 clients x 12 x
//     2 drivers = 480 distinct texts: more than max_prepared_statements=200 per
//     server, so a pooler must evict and re-prepare)
//   - BEGIN; an upsert RETURNING; a read of the same row; COMMIT (every 4th round
//     ROLLBACK), all named statements; the row is checked after the transaction
//   - a named statement failing at execute (100 / $1 with 0: 22012), then the same
//     statement succeeding; every 3rd round the failure is inside a transaction
//   - an unnamed extended-protocol query and a simple query in between
//   - pg: every 5th round the client closes statement "tmp" (protocol Close) and
//     prepares "tmp" again with a different text
//   - postgres: four queries pipelined at once
//   - half way through, every client disconnects and reconnects (new session, same
//     statement names for pg, new ones for postgres.js)
// Every ErrorResponse the server side sends is also counted on the wire (a tap on the
// socket), so an error that a driver hides (postgres.js silently re-prepares after
// 26000 "prepared statement does not exist") still counts as unexpected.
//
// A client whose step takes longer than --step-timeout is counted as stuck, its
// connection dropped, and it stops (the others go on). postgres.js itself hangs in a
// pipelined batch once statements it prepared are gone on the server (26000 then a
// silent retry; seen directly against PostgreSQL after DEALLOCATE ALL), so a pooler
// that loses statements shows as postgres.js clients stuck in "pipelined".
//
// Prints one JSON summary on stdout; exit 0 only when every answer was right and the
// only errors were the deliberate 22012s (1: wrong answers / unexpected errors,
// 2: usage or setup error, 3: timeout).
'use strict'

const net = require('net')

let pg, postgres
try {
  pg = require('pg')
  postgres = require('postgres')
} catch (e) {
  console.error(`prepared.js: ${e.message} (run npm ci in ${__dirname})`)
  process.exit(2)
}

// ------------------------------------------------------------------ options

function parseArgs(argv) {
  const o = {
    url: null, host: '127.0.0.1', port: 5432, user: 'app', password: 'app', dbname: 'app',
    clients: 20, iterations: 40, drivers: 'pg,postgres', spread: 12, timeout: 240, stepTimeout: 15,
    setup: true,
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      return argv[++i]
    }
    switch (a) {
      case '--url': o.url = val(); break
      case '--host': o.host = val(); break
      case '--port': o.port = +val(); break
      case '--user': o.user = val(); break
      case '--password': o.password = val(); break
      case '--dbname': o.dbname = val(); break
      case '--clients': o.clients = +val(); break
      case '--iterations': o.iterations = +val(); break
      case '--drivers': o.drivers = val(); break
      case '--spread': o.spread = +val(); break
      case '--timeout': o.timeout = +val(); break
      case '--step-timeout': o.stepTimeout = +val(); break
      case '--no-setup': o.setup = false; break
      case '-h': case '--help': usage(null); break
      default: usage(`unknown argument ${a}`)
    }
  }
  if (o.url) {
    let u
    try { u = new URL(o.url) } catch (e) { usage(`bad --url: ${e.message}`) }
    o.host = u.hostname || o.host
    o.port = u.port ? +u.port : 5432
    if (u.username) o.user = decodeURIComponent(u.username)
    if (u.password) o.password = decodeURIComponent(u.password)
    if (u.pathname && u.pathname.length > 1) o.dbname = decodeURIComponent(u.pathname.slice(1))
  }
  o.drivers = o.drivers.split(',').filter(Boolean)
  for (const d of o.drivers) if (d !== 'pg' && d !== 'postgres') usage(`unknown driver ${d}`)
  for (const k of ['port', 'clients', 'iterations', 'spread', 'timeout', 'stepTimeout']) {
    if (!Number.isInteger(o[k]) || o[k] < 1) usage(`--${k} must be a positive integer`)
  }
  return o
}

function usage(msg) {
  const text = 'usage: node prepared.js [--url URL | --host H --port P --user U --password W --dbname D]\n' +
    '         [--clients N] [--iterations N] [--drivers pg,postgres] [--spread N] [--timeout S]\n' +
    '         [--step-timeout S] [--no-setup]'
  if (msg) {
    console.error(`prepared.js: ${msg}\n${text}`)
    process.exit(2)
  }
  console.log(text)
  process.exit(0)
}

const opt = parseArgs(process.argv.slice(2))
const T_LOOKUP = 'npm_prep_lookup'
const T_COUNTER = 'npm_prep_counter'
const LOOKUP_ROWS = 100
const KEYS = 5 // counter rows per client

// ------------------------------------------------------------------ bookkeeping

function newStats() {
  return {
    clients: 0, rounds: 0, queries: 0, named_executions: 0, transactions: 0, rollbacks: 0,
    reconnects: 0, closes: 0, expected_errors: 0, wrong_answers: 0, unexpected_errors: 0, stuck: 0,
    errors: {}, // "SQLSTATE message" (or JS error) -> count, as the driver reported it
    wrong: [], // first few wrong answers
    wire: { parse_complete: 0, error_responses: 0, errors: {} }, // seen on the socket
  }
}
const stats = {}
for (const d of opt.drivers) stats[d] = newStats()
// Where each client is (shown for the clients that have not finished at --timeout).
const progress = {}
for (const d of opt.drivers) progress[d] = []
function tracker(d, c) {
  const p = { client: c, round: 0, step: 'connect', done: false }
  progress[d][c] = p
  return p
}

const MAX_EXAMPLES = 10
function errText(e) {
  if (!e) return String(e)
  const code = e.code ? `${e.code} ` : ''
  return `${code}${e.message || e}`.replace(/\s+/g, ' ').trim()
}
// Errors are grouped with quoted names blanked out ("s1" and "s2" do not exist: one
// group); each group keeps its first message verbatim.
function groupKey(text) { return text.replace(/"[^"]*"/g, '"..."') }
function unexpected(s, step, e) {
  s.unexpected_errors++
  const text = errText(e)
  const k = groupKey(text)
  if (!s.errors[k]) s.errors[k] = { count: 0, first_step: step, example: text }
  s.errors[k].count++
}
function wrong(s, step, got, want) {
  s.wrong_answers++
  if (s.wrong.length < MAX_EXAMPLES) s.wrong.push({ step, got, want })
}
class Stuck extends Error {}
// fn() within --step-timeout, or a Stuck error (the step's promise is left behind).
function timed(name, fn) {
  let timer
  const work = Promise.resolve().then(fn)
  work.catch(() => {})
  return Promise.race([
    work,
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Stuck(`no answer after ${opt.stepTimeout} s in step ${name}`)),
        opt.stepTimeout * 1000)
    }),
  ]).finally(() => clearTimeout(timer))
}
function same(a, b) { return JSON.stringify(a) === JSON.stringify(b) }
function check(s, step, got, want) {
  if (!same(got, want)) wrong(s, step, got, want)
}

// A passive tap on the server-to-client byte stream: counts ParseComplete and every
// ErrorResponse (by SQLSTATE and message), whatever the driver does with them.
function tap(sock, s) {
  let pending = null
  sock.on('data', (chunk) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk
    let off = 0
    while (buf.length - off >= 5) {
      const type = buf[off]
      const len = buf.readUInt32BE(off + 1)
      if (len < 4) { pending = null; return } // not the protocol: give up quietly
      if (buf.length - off < 1 + len) break
      if (type === 0x31) { // '1' ParseComplete
        s.wire.parse_complete++
      } else if (type === 0x45) { // 'E' ErrorResponse
        const f = {}
        let p = off + 5
        const end = off + 1 + len
        while (p < end && buf[p] !== 0) {
          const ft = String.fromCharCode(buf[p])
          const z = buf.indexOf(0, p + 1)
          if (z < 0 || z >= end) break
          f[ft] = buf.toString('utf8', p + 1, z)
          p = z + 1
        }
        s.wire.error_responses++
        const text = `${f.C || '?????'} ${f.M || ''}`
        const k = groupKey(text)
        if (!s.wire.errors[k]) s.wire.errors[k] = { count: 0, example: text }
        s.wire.errors[k].count++
      }
      off += 1 + len
    }
    pending = off < buf.length ? Buffer.from(buf.subarray(off)) : null
  })
}

// ------------------------------------------------------------------ setup

async function setup() {
  const c = new pg.Client(pgConfig(null))
  await c.connect()
  try {
    await c.query(`DROP TABLE IF EXISTS ${T_LOOKUP}, ${T_COUNTER}`)
    await c.query(`CREATE TABLE ${T_LOOKUP} (k int PRIMARY KEY, name text NOT NULL)`)
    await c.query(`INSERT INTO ${T_LOOKUP} SELECT g, 'name-' || g FROM generate_series(1, ${LOOKUP_ROWS}) g`)
    await c.query(`CREATE TABLE ${T_COUNTER} (driver text, client int, k int, v int NOT NULL,
      PRIMARY KEY (driver, client, k))`)
  } finally {
    await c.end()
  }
}

function lookupKey(c, i) { return ((c * 7 + i) % LOOKUP_ROWS) + 1 }
function spreadBase(c) { return c * 1000 } // statement j of client c adds c*1000 + j

// ------------------------------------------------------------------ node-postgres

function pgConfig(s) {
  return {
    host: opt.host, port: opt.port, user: opt.user, password: opt.password, database: opt.dbname,
    ssl: false, connectionTimeoutMillis: 30000, application_name: 'pgring-npm-pg',
    stream: () => {
      const sock = new net.Socket()
      if (s) tap(sock, s)
      return sock
    },
  }
}

// Protocol Close of a named statement (node-postgres has no public call for it; this
// is its documented "submittable" interface, as pg-cursor uses), then forget it in the
// driver so that the next query of that name sends Parse again.
class CloseStatement {
  constructor(client, name) {
    this.client = client
    this.statement = name
    this.promise = new Promise((resolve, reject) => { this.resolve = resolve; this.reject = reject })
  }
  submit(connection) {
    connection.close({ type: 'S', name: this.statement })
    connection.sync()
    return null
  }
  handleReadyForQuery() {
    delete this.client.connection.parsedStatements[this.statement]
    this.resolve()
  }
  handleError(err) { this.reject(err) } // the driver drops the query before ReadyForQuery
  handleCommandComplete() {}
  handleRowDescription() {}
  handleDataRow() {}
  handleEmptyQuery() {}
  handlePortalSuspended() {}
  handleCopyInResponse() {}
  handleCopyData() {}
}

async function pgClient(c) {
  const s = stats.pg
  const p = tracker('pg', c)
  let client = null
  try {
    await pgRounds(c, s, p, (x) => { client = x })
  } catch (e) {
    if (!(e instanceof Stuck)) throw e
    stuck(s, p, e)
    if (client) client.connection.stream.destroy()
  }
}

async function pgRounds(c, s, p, setClient) {
  const expectCounter = new Array(KEYS).fill(0)
  let tmpGen = 0
  let client = null

  async function connect() {
    client = new pg.Client(pgConfig(s))
    setClient(client)
    client.on('error', (e) => { if (!p.stuck) unexpected(s, 'client error event', e) })
    await timed('connect', () => client.connect())
  }
  // One named (or unnamed, without name) extended-protocol query.
  async function run(step, name, text, values) {
    s.queries++
    if (name) s.named_executions++
    const cfg = { text, values }
    if (name) cfg.name = name
    return (await client.query(cfg)).rows
  }
  async function simple(sql) {
    s.queries++
    return client.query(sql)
  }
  async function rollbackQuietly() {
    try { await timed('ROLLBACK after error', () => simple('ROLLBACK')) } catch (e) {
      if (e instanceof Stuck) throw e
      unexpected(s, 'ROLLBACK after error', e)
    }
  }
  // Run fn; an unexpected error is counted (with its step) and, in a transaction,
  // rolled back, and the client goes on with its next step.
  async function step(name, fn, inTx) {
    p.step = name
    try {
      await timed(name, fn)
    } catch (e) {
      if (e instanceof Stuck) throw e
      unexpected(s, name, e)
      if (inTx) await rollbackQuietly()
    }
  }
  async function expectDivError(step, inTx) {
    try {
      const rows = await run(step, 'div', 'SELECT 100 / $1::int AS q', [0])
      wrong(s, step, rows, 'ERROR 22012')
    } catch (e) {
      if (e.code === '22012') s.expected_errors++
      else { unexpected(s, step, e); if (inTx) await rollbackQuietly(); return false }
    }
    return true
  }

  await connect()
  s.clients++
  for (let i = 0; i < opt.iterations; i++) {
    p.round = i
    if (i === Math.floor(opt.iterations / 2)) {
      p.step = 'reconnect'
      await timed('disconnect', () => client.end())
      await connect()
      s.reconnects++
    }
    await step('add', async () => {
      check(s, 'add', await run('add', 'add', 'SELECT $1::int + $2::int AS s', [c, i]), [{ s: c + i }])
    })
    await step('lookup', async () => {
      const k = lookupKey(c, i)
      check(s, 'lookup', await run('lookup', 'lookup', `SELECT name FROM ${T_LOOKUP} WHERE k = $1`, [k]),
        [{ name: `name-${k}` }])
    })
    await step('own (same name, text differs per client)', async () => {
      check(s, 'own', await run('own', 'own', `SELECT $1::int * ${c + 1} AS p, ${c} AS c`, [i]),
        [{ p: i * (c + 1), c }])
    })
    await step('mine (name differs per client, same text)', async () => {
      check(s, 'mine', await run('mine', `mul_${c}`, 'SELECT $1::int * $2::int AS m', [c, i]), [{ m: c * i }])
    })
    await step('spread', async () => {
      const j = i % opt.spread
      check(s, 'spread', await run('spread', `e${j}`, `SELECT $1::int + ${spreadBase(c) + j} AS e`, [i]),
        [{ e: i + spreadBase(c) + j }])
    })
    await step('unnamed', async () => {
      check(s, 'unnamed', await run('unnamed', null, 'SELECT $1::text AS t', [`u${c}-${i}`]), [{ t: `u${c}-${i}` }])
    })
    // A transaction of named statements; every 4th one rolled back.
    const k = i % KEYS
    const commit = i % 4 !== 3
    await step('transaction', async () => {
      await simple('BEGIN')
      s.transactions++
      const up = await run('upsert', 'upsert',
        `INSERT INTO ${T_COUNTER} (driver, client, k, v) VALUES ($1, $2, $3, $4)
         ON CONFLICT (driver, client, k) DO UPDATE SET v = ${T_COUNTER}.v + EXCLUDED.v RETURNING v`,
        ['pg', c, k, 1])
      check(s, 'upsert RETURNING', up, [{ v: expectCounter[k] + 1 }])
      const got = await run('get in transaction', 'get',
        `SELECT v FROM ${T_COUNTER} WHERE driver = $1 AND client = $2 AND k = $3`, ['pg', c, k])
      check(s, 'get in transaction', got, [{ v: expectCounter[k] + 1 }])
      if (commit) {
        await simple('COMMIT')
        expectCounter[k]++
      } else {
        await simple('ROLLBACK')
        s.rollbacks++
      }
    }, true)
    await step('get after transaction', async () => {
      const got = await run('get', 'get',
        `SELECT v FROM ${T_COUNTER} WHERE driver = $1 AND client = $2 AND k = $3`, ['pg', c, k])
      check(s, 'get after transaction', got, expectCounter[k] ? [{ v: expectCounter[k] }] : [])
    })
    // A named statement failing at execute, then working; every 3rd time in a transaction.
    if (i % 3 === 2) {
      await step('division by zero in a transaction', async () => {
        await simple('BEGIN')
        s.transactions++
        check(s, 'in transaction before the error', await run('add', 'add', 'SELECT $1::int + $2::int AS s', [i, 1]),
          [{ s: i + 1 }])
        if (await expectDivError('div 0 in transaction', true)) {
          await simple('ROLLBACK')
          s.rollbacks++
        }
      }, true)
    } else {
      await step('division by zero', () => expectDivError('div 0', false))
    }
    await step('div after the error', async () => {
      check(s, 'div 4', await run('div', 'div', 'SELECT 100 / $1::int AS q', [4]), [{ q: 25 }])
    })
    await step('simple query', async () => {
      const r = await simple(`SELECT ${c} AS c, ${i} AS i`)
      check(s, 'simple', r.rows, [{ c, i }])
    })
    // Close "tmp" and prepare it again with another text (pooler: forget the old one).
    if (i > 0 && i % 5 === 0) {
      await step('close tmp', async () => {
        const cl = new CloseStatement(client, 'tmp')
        client.query(cl)
        await cl.promise
        s.closes++
        tmpGen++
      })
    }
    await step('tmp', async () => {
      check(s, `tmp (generation ${tmpGen})`, await run('tmp', 'tmp', `SELECT $1::int + ${tmpGen * 100} AS t`, [c]),
        [{ t: c + tmpGen * 100 }])
    })
    s.rounds++
  }
  await step('final counters', async () => {
    const rows = await run('final', 'final',
      `SELECT k, v FROM ${T_COUNTER} WHERE driver = $1 AND client = $2 ORDER BY k`, ['pg', c])
    const want = []
    expectCounter.forEach((v, k) => { if (v) want.push({ k, v }) })
    check(s, 'final counters', rows, want)
  })
  p.step = 'disconnect'
  await timed('disconnect', () => client.end())
  p.done = true
}

// ------------------------------------------------------------------ postgres.js

function pjsConnect(s) {
  return postgres({
    host: opt.host, port: opt.port, user: opt.user, pass: opt.password, database: opt.dbname,
    ssl: false, max: 1, connect_timeout: 30, idle_timeout: 0, max_lifetime: null,
    connection: { application_name: 'pgring-npm-postgresjs' },
    onnotice: () => {},
    socket: () => new Promise((resolve, reject) => {
      const sock = net.connect({ host: opt.host, port: opt.port })
      sock.setNoDelay(true)
      tap(sock, s)
      sock.once('error', reject)
      sock.once('connect', () => { sock.removeListener('error', reject); resolve(sock) })
    }),
  })
}

async function pjsClient(c) {
  const s = stats.postgres
  const p = tracker('postgres', c)
  let sql = null
  try {
    await pjsRounds(c, s, p, (x) => { sql = x })
  } catch (e) {
    if (!(e instanceof Stuck)) throw e
    stuck(s, p, e)
    if (sql) sql.end({ timeout: 0 }).catch(() => {})
  }
}

async function pjsRounds(c, s, p, setSql) {
  const expectCounter = new Array(KEYS).fill(0)
  let sql = pjsConnect(s)
  setSql(sql)
  const count = (n = 1) => { s.queries += n; s.named_executions += n }
  const rows = (r) => r.map((x) => ({ ...x })) // Result rows -> plain objects
  async function step(name, fn) {
    p.step = name
    try {
      await timed(name, fn)
    } catch (e) {
      if (e instanceof Stuck) throw e
      unexpected(s, name, e)
    }
  }
  async function div0(q, stepName) {
    try {
      const r = await q`SELECT 100 / ${0}::int AS q`
      wrong(s, stepName, rows(r), 'ERROR 22012')
    } catch (e) {
      if (e.code === '22012') { s.expected_errors++; return }
      throw e
    }
  }

  s.clients++
  for (let i = 0; i < opt.iterations; i++) {
    p.round = i
    if (i === Math.floor(opt.iterations / 2)) {
      p.step = 'reconnect'
      await timed('disconnect', () => sql.end({ timeout: 5 }))
      sql = pjsConnect(s)
      setSql(sql)
      s.reconnects++
    }
    await step('add', async () => {
      count()
      check(s, 'add', rows(await sql`SELECT ${c}::int + ${i}::int AS s`), [{ s: c + i }])
    })
    await step('lookup', async () => {
      const k = lookupKey(c, i)
      count()
      check(s, 'lookup', rows(await sql`SELECT name FROM ${sql(T_LOOKUP)} WHERE k = ${k}`), [{ name: `name-${k}` }])
    })
    await step('own (text unique to the client)', async () => {
      count()
      check(s, 'own', rows(await sql.unsafe(`SELECT $1::int * ${c + 1} AS p, ${c} AS c`, [i], { prepare: true })),
        [{ p: i * (c + 1), c }])
    })
    await step('spread', async () => {
      const j = i % opt.spread
      count()
      check(s, 'spread', rows(await sql.unsafe(`SELECT $1::int + ${spreadBase(c) + j} AS e`, [i], { prepare: true })),
        [{ e: i + spreadBase(c) + j }])
    })
    await step('pipelined', async () => {
      count(4)
      const [a, b, m, l] = await Promise.all([
        sql`SELECT ${c}::int + ${i}::int AS s`,
        sql`SELECT 100 / ${5}::int AS q`,
        sql`SELECT ${c}::int * ${i}::int AS m`,
        sql`SELECT name FROM ${sql(T_LOOKUP)} WHERE k = ${lookupKey(c, i + 1)}`,
      ])
      check(s, 'pipelined', [rows(a), rows(b), rows(m), rows(l)],
        [[{ s: c + i }], [{ q: 20 }], [{ m: c * i }], [{ name: `name-${lookupKey(c, i + 1)}` }]])
    })
    await step('unnamed', async () => {
      s.queries++
      check(s, 'unnamed', rows(await sql.unsafe('SELECT $1::text AS t', [`u${c}-${i}`])), [{ t: `u${c}-${i}` }])
    })
    const k = i % KEYS
    const commit = i % 4 !== 3
    await step('transaction', async () => {
      s.transactions++
      const ROLLBACK = new Error('deliberate rollback')
      try {
        await sql.begin(async (tx) => {
          count(2)
          const up = await tx`INSERT INTO ${sql(T_COUNTER)} (driver, client, k, v) VALUES ('postgres', ${c}, ${k}, 1)
            ON CONFLICT (driver, client, k) DO UPDATE SET v = ${sql(T_COUNTER)}.v + EXCLUDED.v RETURNING v`
          check(s, 'upsert RETURNING', rows(up), [{ v: expectCounter[k] + 1 }])
          const got = await tx`SELECT v FROM ${sql(T_COUNTER)} WHERE driver = 'postgres' AND client = ${c} AND k = ${k}`
          check(s, 'get in transaction', rows(got), [{ v: expectCounter[k] + 1 }])
          if (!commit) throw ROLLBACK
        })
        expectCounter[k]++
      } catch (e) {
        if (e !== ROLLBACK) throw e
        s.rollbacks++
      }
    })
    await step('get after transaction', async () => {
      count()
      const got = await sql`SELECT v FROM ${sql(T_COUNTER)} WHERE driver = 'postgres' AND client = ${c} AND k = ${k}`
      check(s, 'get after transaction', rows(got), expectCounter[k] ? [{ v: expectCounter[k] }] : [])
    })
    if (i % 3 === 2) {
      await step('division by zero in a transaction', async () => {
        s.transactions++
        try {
          await sql.begin(async (tx) => {
            count(2)
            check(s, 'in transaction before the error', rows(await tx`SELECT ${i}::int + ${1}::int AS s`), [{ s: i + 1 }])
            await tx`SELECT 100 / ${0}::int AS q`
          })
          wrong(s, 'div 0 in transaction', 'committed', 'ERROR 22012')
        } catch (e) {
          if (e.code !== '22012') throw e
          s.expected_errors++
          s.rollbacks++
        }
      })
    } else {
      await step('division by zero', async () => { count(); await div0(sql, 'div 0') })
    }
    await step('div after the error', async () => {
      count()
      check(s, 'div 4', rows(await sql`SELECT 100 / ${4}::int AS q`), [{ q: 25 }])
    })
    await step('simple query', async () => {
      s.queries++
      check(s, 'simple', rows(await sql.unsafe(`SELECT ${c} AS c, ${i} AS i`, [], { simple: true })), [{ c, i }])
    })
    s.rounds++
  }
  await step('final counters', async () => {
    count()
    const got = await sql`SELECT k, v FROM ${sql(T_COUNTER)} WHERE driver = 'postgres' AND client = ${c} ORDER BY k`
    const want = []
    expectCounter.forEach((v, k) => { if (v) want.push({ k, v }) })
    check(s, 'final counters', rows(got), want)
  })
  p.step = 'disconnect'
  await timed('disconnect', () => sql.end({ timeout: 5 }))
  p.done = true
}

// ------------------------------------------------------------------ main

function stuck(s, p, e) {
  p.stuck = true
  s.stuck++
  unexpected(s, p.step, e)
}

function summary(extra) {
  const out = { target: `${opt.host}:${opt.port}`, clients_per_driver: opt.clients, iterations: opt.iterations, ...extra, drivers: {} }
  let bad = 0
  for (const d of opt.drivers) {
    const s = stats[d]
    // On the wire, the only ErrorResponses expected are the deliberate 22012s.
    const wireUnexpected = {}
    let wireBad = 0
    for (const [k, v] of Object.entries(s.wire.errors)) {
      if (!k.startsWith('22012 ')) { wireUnexpected[k] = v; wireBad += v.count }
    }
    const wire22012 = s.wire.error_responses - wireBad
    if (wire22012 !== s.expected_errors) {
      const k = `22012 seen ${wire22012} times on the wire, ${s.expected_errors} by the driver`
      wireUnexpected[k] = { count: 1, example: k }
      wireBad++
    }
    s.wire.unexpected = wireUnexpected
    s.wire.unexpected_count = wireBad
    s.unfinished = progress[d].filter((x) => x && !x.done)
      .map(({ client, round, step, stuck }) => ({ client, round, step, stuck: !!stuck }))
    s.ok = s.wrong_answers === 0 && s.unexpected_errors === 0 && wireBad === 0 &&
      s.rounds === opt.clients * opt.iterations
    if (!s.ok) bad++
    out.drivers[d] = s
  }
  out.ok = bad === 0 && !extra.timeout
  return out
}

async function main() {
  const t0 = Date.now()
  const timer = setTimeout(() => {
    console.log(JSON.stringify(summary({ elapsed_ms: Date.now() - t0, timeout: `not finished after ${opt.timeout} s` }), null, 2))
    process.exit(3)
  }, opt.timeout * 1000)
  if (opt.setup) {
    try {
      await setup()
    } catch (e) {
      console.error(`prepared.js: setup failed: ${errText(e)}`)
      process.exit(2)
    }
  }
  const jobs = []
  for (let c = 0; c < opt.clients; c++) {
    for (const d of opt.drivers) {
      const fn = d === 'pg' ? pgClient : pjsClient
      jobs.push(fn(c).catch((e) => unexpected(stats[d], `client ${c}`, e)))
    }
  }
  await Promise.all(jobs)
  clearTimeout(timer)
  const out = summary({ elapsed_ms: Date.now() - t0 })
  console.log(JSON.stringify(out, null, 2))
  process.exit(out.ok ? 0 : 1)
}

main()
