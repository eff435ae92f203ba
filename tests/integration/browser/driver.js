// Drives one headless Chromium page running JsSIP (page.js) for Skein's integration tests.
//
//   node driver.js   (NODE_PATH must reach playwright-core; config in SKEIN_BROWSER_CONFIG as JSON:
//                     { url, executable_path, no_sandbox, lifetime_s, debug })
//
// stdout: JSON lines only.
//   {"ready": true, "browser": "<version>", "events": [...]}            once the page has loaded
//   {"event": {...}}                                                     every page event (page.js emit())
//   {"id": N, "ok": true, "result": ...} / {"id": N, "ok": false, "error": "..."}   command answers
// stdin: JSON lines {"id": N, "cmd": "register"|"send_message"|"unregister"|"events"|"stop", "args": {...}}
// stderr: the page's console (JsSIP's SIP trace when debug), page errors, playwright errors.
//
// The browser reaches 127.0.0.1 only: every other HTTP(S) request is aborted by a route
// (and reported as a "blocked" event), host names do not resolve (--host-resolver-rules),
// and anything that would still go out meets a proxy on a closed loopback port.
// EOF on stdin, "stop", an error at start-up, or lifetime_s: the browser is closed and the
// process exits (playwright kills the browser process on exit whatever happens).
'use strict';
const readline = require('readline');
const { chromium } = require('playwright-core');

const cfg = JSON.parse(process.env.SKEIN_BROWSER_CONFIG || '{}');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const err = (s) => process.stderr.write(s + '\n');

let browser = null;
let closing = false;
async function finish(code) {
  if (closing) return;
  closing = true;
  const hard = setTimeout(() => process.exit(code || 4), 5000);
  try { if (browser) await browser.close(); } catch (e) { err('close: ' + e); }
  clearTimeout(hard);
  process.exit(code);
}
setTimeout(() => { err(`driver: lifetime ${cfg.lifetime_s} s reached`); finish(3); },
           (cfg.lifetime_s || 120) * 1000).unref();

(async () => {
  const args = ['--disable-gpu', '--disable-quic', '--no-first-run', '--no-default-browser-check',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--disable-default-apps', '--disable-extensions', '--disable-domain-reliability',
                '--disable-features=MediaRouter,OptimizationHints,Translate,AutofillServerCommunication',
                '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
                '--proxy-server=http://127.0.0.1:9'];   // loopback is bypassed implicitly
  if (cfg.no_sandbox) args.push('--no-sandbox');
  browser = await chromium.launch({ executablePath: cfg.executable_path || '/usr/bin/chromium',
                                    headless: true, args, timeout: 30000 });
  const ctx = await browser.newContext();
  await ctx.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === 'data:' || u.hostname === '127.0.0.1') return route.continue();
    out({ event: { type: 'blocked', url: route.request().url() } });
    return route.abort('blockedbyclient');
  });
  await ctx.exposeBinding('skeinEvent', (_src, ev) => out({ event: ev }));
  const page = await ctx.newPage();
  page.on('console', (m) => err(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => { err(`[pageerror] ${e}`); out({ event: { type: 'pageerror', error: String(e) } }); });
  page.on('crash', () => { out({ event: { type: 'crash' } }); finish(5); });
  browser.on('disconnected', () => { if (!closing) { err('driver: browser disconnected'); process.exit(6); } });
  const resp = await page.goto(cfg.url, { timeout: 15000 });
  if (!resp || resp.status() !== 200) throw new Error(`GET ${cfg.url}: ${resp ? resp.status() : 'no response'}`);
  await page.waitForFunction(() => typeof window.JsSIP === 'object' && typeof window.skeinRegister === 'function',
                             null, { timeout: 10000 });
  out({ ready: true, browser: browser.version(), events: await page.evaluate(() => window.skeinEvents) });

  const handlers = {
    register: (a) => page.evaluate((o) => window.skeinRegister(o), Object.assign({ debug: !!cfg.debug }, a)),
    send_message: (a) => page.evaluate(([t, x]) => window.skeinSendMessage(t, x), [a.target, a.text]),
    unregister: () => page.evaluate(() => window.skeinUnregister()),
    events: () => page.evaluate(() => window.skeinEvents),
    evaluate: (a) => page.evaluate(a.expression),   // a JS expression string, for test authors
    stop: async () => { await page.evaluate(() => window.skeinStop()).catch(() => {}); setImmediate(() => finish(0)); return 'bye'; },
  };
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    let req;
    try { req = JSON.parse(line); } catch (e) { out({ id: null, ok: false, error: 'bad json: ' + e }); return; }
    const h = handlers[req.cmd];
    if (!h) { out({ id: req.id, ok: false, error: 'unknown command ' + req.cmd }); return; }
    try { out({ id: req.id, ok: true, result: await h(req.args || {}) }); }
    catch (e) { out({ id: req.id, ok: false, error: String(e && e.message || e) }); }
  });
  rl.on('close', () => finish(0));
})().catch((e) => { err('driver: ' + (e && e.stack || e)); out({ fatal: String(e && e.message || e) }); finish(1); });
