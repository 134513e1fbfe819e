// Walks bt's web console in headless Chromium (playwright-core driving Debian's
// /usr/bin/chromium) as a person would, asserting on what the pages show.
// Run by tests/console.rs, which starts `bt serve`, seeds it through the real
// ingest endpoint with snapshots of crashed example programs, and passes:
//   BASE (http://127.0.0.1:PORT), SHOTS (screenshot directory), SEED (JSON: what
//   was submitted), MODE (walk | expired).
'use strict';
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');

const BASE = process.env.BASE;
const SHOTS = process.env.SHOTS;
const SEED = JSON.parse(process.env.SEED || '{}');
const PASSWORD = 'pw-123456789';

function step(what) {
  console.log(`ok: ${what}`);
}

async function ready(page) {
  await page.waitForFunction(() => {
    const v = document.getElementById('view');
    return v && v.getAttribute('data-ready') === location.pathname + location.search;
  }, null, { timeout: 15000 });
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

async function login(page, user, password) {
  await page.goto(`${BASE}/`);
  assert.match(page.url(), /\/login\?next=/, 'an anonymous visitor is sent to the login page');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
}

async function texts(page, selector) {
  return page.$$eval(selector, (els) => els.map((e) => e.textContent.trim()));
}

async function walk(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.addInitScript(() => { window.__xss = undefined; });

  // A wrong password: the login page again, with the reason, and no session.
  await login(page, 'admin', 'not-the-password');
  assert.match(await page.textContent('#message'), /Wrong user name or password/);
  assert.equal((await ctx.cookies()).filter((c) => c.name === 'bt_session').length, 0);
  step('a wrong password is refused');

  // Log in: the overview of every project.
  await page.fill('#username', 'admin');
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  await ready(page);
  const cookie = (await ctx.cookies()).find((c) => c.name === 'bt_session');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', `session cookie ${JSON.stringify(cookie)}`);
  assert.equal(new URL(page.url()).pathname, '/');
  const demo = page.locator('tr[data-project="demo"]');
  assert.equal(await demo.locator('.crashes-24h').textContent(), String(SEED.crashes));
  assert.equal(await demo.locator('.groups-30d').textContent(), String(SEED.groups));
  assert.equal(await demo.locator('.new-groups').textContent(), String(SEED.groups));
  const spark = (await demo.locator('svg.spark').getAttribute('data-points')).split(',').map(Number);
  assert.equal(spark.length, 32);
  assert.equal(spark.reduce((a, b) => a + b, 0), SEED.crashes, 'the sparkline counts every crash');
  assert.ok(await page.locator('tr[data-project="other"]').count() === 1);
  await shot(page, 'overview');
  step('overview: crashes, groups, new groups and the sparkline of each project');

  // Triage: the groups of the project, biggest first.
  await Promise.all([page.waitForURL(/\/p\/demo$/), demo.locator('a').click()]);
  await ready(page);
  const rows = page.locator('#groups tbody tr');
  assert.equal(await rows.count(), SEED.groups);
  const counts = (await texts(page, '#groups tbody td.count')).map(Number);
  assert.deepEqual(counts, [...counts].sort((a, b) => b - a), 'sorted by count, descending');
  const top = rows.first();
  assert.equal(await top.getAttribute('data-fingerprint'), SEED.vars_fingerprint);
  assert.equal(await top.locator('td.count').textContent(), String(SEED.vars_count));
  assert.equal(await top.locator('td.hosts').textContent(), String(SEED.vars_hosts));
  assert.match(await top.locator('td.title').textContent(), /crash_here/);
  const topSpark = (await top.locator('svg.spark').getAttribute('data-points')).split(',').map(Number);
  assert.equal(topSpark.reduce((a, b) => a + b, 0), SEED.vars_count);
  // The hostile function name of the JSON report is shown as text.
  assert.ok((await texts(page, '#groups td.title a')).some((t) => t.includes('<img src=x onerror=')), 'markup shown as text');
  await shot(page, 'triage');
  step('triage: groups, counts, hosts, sparklines, titles from classifiers and frames');

  // The filter bar: the filter goes into the URL; the list narrows.
  await page.click('#add-filter');
  await page.fill('.filter .f-attr', 'hostname');
  await page.selectOption('.filter .f-op', 'equal');
  await page.fill('.filter .f-value', 'host-b');
  await Promise.all([page.waitForURL(/filter=hostname%2Cequal%2Chost-b/), page.click('#apply')]);
  await ready(page);
  assert.equal(await rows.count(), SEED.host_b_groups, 'groups with a crash on host-b');
  // Sorting by a column header, also in the URL.
  await Promise.all([page.waitForURL(/sort=count&dir=asc/), page.click('th[data-sort="count"] button')]);
  await ready(page);
  const asc = (await texts(page, '#groups tbody td.count')).map(Number);
  assert.deepEqual(asc, [...asc].sort((a, b) => a - b));
  // A deep link pasted elsewhere shows the same list.
  const deep = page.url();
  const page2 = await ctx.newPage();
  await page2.goto(deep);
  await ready(page2);
  assert.deepEqual((await texts(page2, '#groups tbody td.count')).map(Number), asc);
  await page2.close();
  step('filter bar, sorting and deep links');

  // Keyboard: j selects the first row, Enter opens it.
  await page.goto(`${BASE}/p/demo`);
  await ready(page);
  await page.keyboard.press('j');
  await Promise.all([page.waitForURL(/\/p\/demo\/g\//), page.keyboard.press('Enter')]);
  await ready(page);
  assert.equal(new URL(page.url()).pathname, `/p/demo/g/${SEED.vars_fingerprint}`);
  step('keyboard navigation in the list');

  // Group details.
  assert.equal(await page.textContent('#count'), String(SEED.vars_count));
  assert.equal(await page.locator('svg.jitter circle.pt').count(), SEED.vars_count, 'one point per instance');
  assert.equal(await page.locator('svg.chart.line').getAttribute('data-total'), String(SEED.vars_count));
  assert.equal(await page.locator('svg.chart.heat').getAttribute('data-total'), String(SEED.vars_count));
  const breakdown = await texts(page, '#breakdown td.value');
  assert.deepEqual([...breakdown].sort(), ['host-a', 'host-b']);
  assert.match(await page.textContent('#classifiers'), /null-dereference/);
  assert.match(await page.textContent('#callstack'), /crash_here/);
  assert.match(await page.textContent('#signature'), /crash_here/);
  const why = await texts(page, '#why tbody td.outcome');
  assert.ok(why.some((t) => /signature/.test(t)) && why.some((t) => /after the end of the signature/.test(t)), why.join(' | '));
  assert.ok((await texts(page, '#why td.rules')).some((t) => /=> (stop|skip|system)/.test(t)), 'the rules that fired');
  const cmds = await texts(page, '#instances td.cmds code');
  assert.ok(cmds.some((c) => /^bt morgue get demo [0-9a-f]+ --url http:\/\/127\.0\.0\.1:\d+$/.test(c)), cmds.join('\n'));
  assert.ok(cmds.some((c) => /^bt hydra demo [0-9a-f]+ --url http/.test(c)));
  // Breakdown by another attribute.
  await Promise.all([page.waitForURL(/attr=version/), page.selectOption('#breakdown-attr', 'version')]);
  await ready(page);
  assert.deepEqual((await texts(page, '#breakdown td.value')).sort(), ['1.0', '1.1']);
  await shot(page, 'group');
  step('group details: graphs, breakdowns, callstack, why grouped, commands');

  // Triage from the group page: resolve and assign.
  await page.selectOption('#set-state', 'resolved');
  await page.fill('#set-assignee', 'alice');
  await page.click('#triage button[type=submit]');
  await page.waitForFunction(() => document.getElementById('state') && document.getElementById('state').textContent === 'resolved');
  await ready(page);
  assert.match(await page.textContent('#history'), /resolved/);
  assert.match(await page.textContent('#history'), /alice/);
  await page.goto(`${BASE}/p/demo`);
  await ready(page);
  assert.equal(await page.locator(`tr[data-fingerprint="${SEED.vars_fingerprint}"] td.state`).textContent(), 'resolved');
  assert.equal(await page.locator(`tr[data-fingerprint="${SEED.vars_fingerprint}"] td.assignee`).textContent(), 'alice');
  step('triage changes from the console, seen in the list');

  // Several groups at once from the list: select two (a click and `x`), mute them.
  const others = page.locator(`#groups tbody tr:not([data-fingerprint="${SEED.vars_fingerprint}"])`);
  const fpA = await others.nth(0).getAttribute('data-fingerprint');
  const fpB = await others.nth(1).getAttribute('data-fingerprint');
  await page.check(`#groups tr[data-fingerprint="${fpA}"] input.select`);
  const idxB = (await page.$$eval('#groups tbody tr', (rs) => rs.map((r) => r.getAttribute('data-fingerprint')))).indexOf(fpB);
  await page.locator('body').click({ position: { x: 1, y: 1 } });
  for (let i = 0; i <= idxB; i++) await page.keyboard.press('j');
  await page.keyboard.press('x');
  await page.selectOption('#bulk-state', 'muted');
  await page.click('#bulk button[type=submit]');
  await page.waitForFunction(([a, b]) => [a, b].every((fp) => {
    const td = document.querySelector(`#groups tr[data-fingerprint="${fp}"] td.state`);
    return td && td.textContent === 'muted';
  }), [fpA, fpB]);
  await ready(page);
  assert.equal(await page.locator(`tr[data-fingerprint="${SEED.vars_fingerprint}"] td.state`).textContent(), 'resolved', 'unselected groups unchanged');
  step('triage of several groups from the list (click and x)');

  // CSRF: a state-changing request with the cookie but without the token is refused.
  const csrf = await page.evaluate(async (fp) => {
    const body = JSON.stringify({ fingerprints: [fp], change: { Assign: 'mallory' } });
    const bare = await fetch('/api/triage?project=demo', { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
    const wrong = await fetch('/api/triage?project=demo', { method: 'POST', body, headers: { 'X-Bt-Csrf': 'f00' } });
    const form = await fetch('/logout', { method: 'POST', body: 'csrf=nope', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, redirect: 'manual' });
    return [bare.status, wrong.status, form.status];
  }, SEED.vars_fingerprint);
  assert.deepEqual(csrf, [403, 403, 403]);
  await page.goto(`${BASE}/p/demo`);
  await ready(page);
  assert.equal(await page.locator(`tr[data-fingerprint="${SEED.vars_fingerprint}"] td.assignee`).textContent(), 'alice');
  step('CSRF: changes without the token are refused and change nothing');

  // The debugger of one crash.
  await page.goto(`${BASE}/p/demo/g/${SEED.vars_fingerprint}`);
  await ready(page);
  await Promise.all([page.waitForURL(/\/p\/demo\/o\//), page.locator('#instances tbody tr a').first().click()]);
  await ready(page);
  await page.waitForSelector('#vars table, #vars p:not(.loading)');
  assert.match(await page.textContent('#signal'), /SIGSEGV/);
  assert.match(await page.textContent('#threads .faulted'), /⚡/);
  assert.match(await page.textContent('#frames li.selected'), /crash_here/);
  const vrow = (name) => page.locator(`#vars tr[data-path="${name}"]`);
  assert.match(await vrow('local_answer').locator('td.value').textContent(), /^1238$/);
  assert.match(await vrow('letter').locator('td.value').textContent(), /81 'Q'/);
  assert.match(await vrow('label').locator('td.value').textContent(), /"main"/);
  // Expanding a pointer: its fields, from the snapshot's types and kept memory; the URL keeps it.
  await Promise.all([page.waitForURL(/x=list/), vrow('list').locator('button.twisty').click()]);
  await ready(page);
  await page.waitForSelector('#vars tr[data-path="list->value"]');
  assert.match(await page.textContent('#vars tr[data-path="list->value"] td.value'), /^\d+$/);
  assert.match(page.url(), /var=list/);
  // Another frame, its own variables; the deep link reopens the same place.
  await Promise.all([page.waitForURL(/frame=1/), page.click('#frames button[data-frame="1"]')]);
  await ready(page);
  await page.waitForSelector('#vars table, #vars p:not(.loading)');
  assert.match(await page.textContent('#frames li.selected'), /walk/);
  const here = page.url();
  const page3 = await ctx.newPage();
  await page3.goto(here);
  await ready(page3);
  assert.match(await page3.textContent('#frames li.selected'), /walk/);
  await page3.close();
  for (const tab of ['modules', 'maps', 'analysis', 'environment', 'attributes']) {
    await Promise.all([page.waitForURL(new RegExp(`tab=${tab}`)), page.click(`#tabs button[data-tab="${tab}"]`)]);
    await ready(page);
  }
  assert.match(await page.textContent('#attributes'), /host-/);
  await page.click('#tabs button[data-tab="modules"]');
  await ready(page);
  assert.match(await page.textContent('#modules'), /vars|libc\.so/);
  await shot(page, 'debugger');
  step('debugger: threads, frames, variables tree, tabs, URL state');

  // A 1,000-thread snapshot: identical stacks listed once.
  await page.goto(`${BASE}/p/demo/o/${SEED.many_object}`);
  await ready(page);
  assert.match(await page.textContent('#threads'), /threads with this stack/);
  assert.ok(await page.locator('#threads li').count() < 20, 'identical stacks grouped');
  step('debugger: 1,000 threads grouped by stack');

  // Hostile attribute values are text, never markup.
  await page.goto(`${BASE}/p/demo/o/${SEED.xss_object}?tab=attributes`);
  await ready(page);
  assert.match(await page.textContent('#attributes'), /<script>window\.__xss=1<\/script>/);
  await page.goto(`${BASE}/p/demo/g/${SEED.xss_fingerprint}`);
  await ready(page);
  assert.match(await page.textContent('h1'), /<img src=x onerror=/);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'no script from a crash report ran');
  step('attribute values and function names with markup are shown as text');

  // Explore: group by an attribute with folds.
  await page.goto(`${BASE}/p/demo/explore`);
  await ready(page);
  await page.fill('#group-by', 'hostname');
  await page.click('#add-fold');
  await page.fill('.fold .fold-attr', 'fingerprint');
  await page.selectOption('.fold .fold-op', 'unique');
  await Promise.all([page.waitForURL(/run=1/), page.click('#apply')]);
  await ready(page);
  const hosts = await texts(page, '#result tbody tr td:first-child');
  assert.deepEqual([...hosts].sort(), [...SEED.hosts].sort());
  assert.match(await page.textContent('#result thead'), /unique\(fingerprint\)/);
  await shot(page, 'explore');
  step('explore: group by any attribute with folds');

  // Settings: a project, a token (shown once), a member.
  await page.goto(`${BASE}/settings`);
  await ready(page);
  await page.fill('#new-project input[name=name]', 'made-in-console');
  await page.click('#new-project button');
  await page.waitForSelector('#admin-projects tr[data-project="made-in-console"]');
  await ready(page);
  await page.selectOption('#token-form select[name=project]', 'made-in-console');
  await page.click('#token-form button');
  await page.waitForFunction(() => /New token \(shown once\): [0-9a-f]{48}/.test(document.getElementById('new-token').textContent));
  assert.ok(await page.locator('#admin-tokens td', { hasText: 'made-in-console' }).count() >= 1);
  await page.fill('#user-form input[name=name]', 'carol');
  await page.fill('#user-form input[name=password]', 'carol-password-1');
  await page.fill('#user-form input[name=projects]', 'made-in-console');
  await page.click('#user-form button');
  await page.waitForSelector('#admin-users tr[data-user="carol"]');
  assert.match(await page.textContent('#admin-users tr[data-user="carol"]'), /member.*made-in-console/);
  await shot(page, 'settings');
  step('settings: projects, tokens, users while the server runs');

  // A phone-width window: nothing wider than the screen.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, storageState: await ctx.storageState() });
  const p4 = await phone.newPage();
  for (const path of ['/p/demo', `/p/demo/g/${SEED.vars_fingerprint}`, `/p/demo/o/${SEED.vars_object}`]) {
    await p4.goto(`${BASE}${path}`);
    await ready(p4);
    const wide = await p4.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 392, `${path} is ${wide} px wide on a 390 px screen`);
  }
  await p4.screenshot({ path: `${SHOTS}/phone-debugger.png`, fullPage: true });
  await phone.close();
  step('readable on a phone-width window');

  // Logout ends the session.
  await Promise.all([page.waitForURL(/\/login\?why=out/), page.click('#logout button')]);
  const r = await page.goto(`${BASE}/p/demo`);
  assert.match(page.url(), /\/login\?next=/);
  assert.equal(r.status(), 200);
  step('logout');

  assert.deepEqual(errors, [], 'no script errors');
  await ctx.close();

  // A member sees only their project.
  const mctx = await browser.newContext();
  const m = await mctx.newPage();
  await login(m, 'mem', PASSWORD);
  await ready(m);
  assert.deepEqual(await texts(m, '#projects tbody tr td:first-child'), ['other']);
  await m.goto(`${BASE}/p/demo`);
  await ready(m);
  assert.match(await m.textContent('#view'), /forbidden/);
  const status = await m.evaluate(async () => (await fetch('/api/console/groups?project=demo')).status);
  assert.equal(status, 403);
  assert.equal(await m.evaluate(async () => (await fetch('/api/admin/users')).status), 403);
  await mctx.close();
  step('a member sees only the projects given, and no settings');
}

async function expired(browser) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await login(page, 'admin', PASSWORD);
  await ready(page);
  const old = (await ctx.cookies()).find((c) => c.name === 'bt_session');
  assert.ok(old.expires > 0, 'the cookie lasts as long as the session');
  await new Promise((r) => setTimeout(r, 3000));
  // The browser dropped the cookie with the session.
  await page.goto(`${BASE}/p/demo`);
  assert.match(page.url(), /\/login\?next=\/p\/demo$/);
  // A browser that still sends it (another clock) is told the session expired.
  await ctx.addCookies([{ name: 'bt_session', value: old.value, url: BASE }]);
  await page.goto(`${BASE}/p/demo`);
  assert.match(page.url(), /\/login\?next=\/p\/demo&why=expired$/);
  assert.match(await page.textContent('#message'), /session has expired/);
  const status = await page.evaluate(async () => (await fetch('/api/console/me')).status);
  assert.equal(status, 401);
  await ctx.close();
  step('an expired session sends the user to the login page, saying why');
}

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    if (process.env.MODE === 'expired') await expired(browser);
    else await walk(browser);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
