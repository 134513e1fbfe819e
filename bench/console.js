// The web console's pages in headless Chromium (make bench-console): the time from
// navigation until each page shows its data (#view[data-ready]), median of 5.
// Env: BASE (a bt serve whose store holds project bench), FP (a group), OBJECT (a
// 1,000-thread snapshot), NODE_PATH (playwright-core).
'use strict';
const { chromium } = require('playwright-core');

(async () => {
  const { BASE, FP, OBJECT } = process.env;
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${BASE}/login`);
  await page.fill('#username', 'bench-user');
  await page.fill('#password', 'bench-password');
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  const pages = [
    ['overview', '/', 1000],
    ['triage (1 project, 30 days)', '/p/bench', 1000],
    ['group details', `/p/bench/g/${FP}`, 1000],
    ['debugger, 1,000 threads', `/p/bench/o/${OBJECT}`, 1000],
  ];
  for (const [name, path, goal] of pages) {
    const times = [];
    for (let i = 0; i < 5; i++) {
      const t = Date.now();
      await page.goto(`${BASE}${path}`);
      await page.waitForFunction(() => {
        const v = document.getElementById('view');
        return v && v.getAttribute('data-ready') === location.pathname + location.search;
      }, null, { timeout: 60000 });
      times.push(Date.now() - t);
    }
    times.sort((a, b) => a - b);
    console.log(`console page: ${name}: median ${times[2]} ms until shown in Chromium, goal < ${goal} ms`);
  }
  await browser.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
