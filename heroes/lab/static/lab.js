// The lesson page's compare button: GET /lessons/{slug}/compare?size=N, then a table of whatever variants
// compare returns, in its order, and a chart of how the gap grows with the size. Our own lines, no library.
"use strict";
(() => {
  const box = document.getElementById("compare");
  if (!box) return;
  const form = document.getElementById("compare-form");
  const input = form.elements.size || null;
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const chart = document.getElementById("chart");
  const param = box.dataset.param || "size";
  const demo = JSON.parse(box.dataset.demo || "[]");
  const runs = new Map(); // size -> the comparison at that size, for the chart
  const SVG = "http://www.w3.org/2000/svg"; // the SVG namespace: a name, nothing is fetched from it

  const el = (tag, attrs = {}, ...children) => {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    node.append(...children); // strings become text, never HTML
    return node;
  };
  const fmt = (n) => n.toLocaleString("en-US");
  const ms = (n) => (n >= 100 ? fmt(Math.round(n)) : n.toFixed(n >= 10 ? 1 : 2));
  const mib = (bytes) => `${(bytes / 1048576).toFixed(bytes >= 10485760 ? 1 : 2)} MiB`;
  const short = (sql) => sql.replace(/^SELECT (.{20,}?) FROM /, "SELECT … FROM "); // the column list folded
  const at = (size) => (size == null ? "on the demo data" : `at ${fmt(size)} ${param}`);

  async function compare(size) {
    const response = await fetch(box.dataset.url + (size ? `?size=${size}` : ""), {
      headers: { accept: "application/json" },
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not JSON: the status line says enough
    }
    if (!response.ok) throw new Error((body && body.detail) || `${response.status} ${response.statusText}`);
    return body;
  }

  function statements(variant) {
    const list = el("ul");
    for (const group of variant.sql) {
      const line = el("code", {}, short(group.sql));
      const times = el("span", { class: "times" }, `× ${fmt(group.count)}`);
      const full = short(group.sql) === group.sql ? null : el("code", {}, group.sql);
      list.append(full ? el("li", {}, el("details", {}, el("summary", {}, line, " ", times), full)) : el("li", {}, line, " ", times));
    }
    if (variant.other_statements) list.append(el("li", {}, `and ${fmt(variant.other_statements)} of other shapes`));
    const noun = variant.statements === 1 ? " statement" : " statements";
    return el("details", {}, el("summary", {}, el("span", { class: "count" }, fmt(variant.statements)), noun), list);
  }

  function table(result) {
    const memory = result.variants.some((v) => v.peak_memory_bytes != null);
    const head = ["variant", "outcome", "statements", "db ms", "wall ms"].concat(memory ? ["peak memory"] : []);
    const rows = result.variants.map((v) => {
      const codes = Object.keys(v.statuses).map(Number);
      const outcome = codes.some((c) => c >= 500) ? "failed" : codes.every((c) => c < 300) ? "ok" : "";
      const cells = [
        el("td", {}, el("span", { class: "variant" }, v.variant), el("span", { class: "request" }, v.request)),
        el("td", { class: `outcome ${outcome}` }, v.outcome),
        el("td", { class: "statements" }, statements(v)),
        el("td", { class: "num db-ms" }, ms(v.db_ms)),
        el("td", { class: "num wall-ms" }, ms(v.wall_ms)),
      ];
      if (memory) cells.push(el("td", { class: "num memory" }, v.peak_memory_bytes == null ? "–" : mib(v.peak_memory_bytes)));
      return el("tr", { "data-variant": v.variant }, ...cells);
    });
    const headings = head.map((h, i) => el("th", i > 2 ? { class: "num" } : {}, h));
    const caption = `${result.lesson} ${at(result.size)}, on ${result.engine}`;
    return el("table", {}, el("caption", {}, caption), el("thead", {}, el("tr", {}, ...headings)), el("tbody", {}, ...rows));
  }

  const COLORS = { bad: ["#b3261e", "#d9730d", "#8e244d"], fixed: ["#1b6e35", "#0b6e99", "#5b7f00"], other: ["#6b3fa0", "#3d4f8f"] };
  function colors(variants) {
    const used = { bad: 0, fixed: 0, other: 0 };
    return variants.map((name) => {
      const family = name.startsWith("bad") ? "bad" : name.startsWith("fixed") ? "fixed" : "other";
      return COLORS[family][used[family]++ % COLORS[family].length];
    });
  }

  function bars(title, sizes, variants, palette, value, format) {
    const W = 480, H = 260, top = 40, bottom = 32, side = 8;
    const max = Math.max(1, ...[...runs.values()].flatMap((r) => r.variants.map((v) => value(v) || 0)));
    const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, "data-metric": title });
    svg.append(el("svg:text", { x: side, y: 20, "font-size": 18, "font-weight": 700 }, title));
    const group = (W - 2 * side) / sizes.length;
    const bar = (group * 0.84) / Math.max(1, variants.length);
    sizes.forEach((size, i) => {
      const left = side + i * group + group * 0.08;
      const label = { x: left + group * 0.42, y: H - 8, "font-size": 16, "text-anchor": "middle" };
      svg.append(el("svg:text", label, `${fmt(size)} ${param}`));
      const run = runs.get(size);
      if (!run) {
        const y = top + (H - top - bottom) / 2;
        svg.append(el("svg:text", { ...label, y, fill: "#555", "font-size": 16 }, "not run yet"));
        return;
      }
      variants.forEach((name, j) => {
        const v = run.variants.find((x) => x.variant === name);
        if (!v || value(v) == null) return;
        const h = Math.max(1, ((H - top - bottom - 18) * value(v)) / max);
        const x = left + j * bar;
        const attrs = { x, y: H - bottom - h, width: bar - 2, height: h, fill: palette[j] };
        svg.append(el("svg:rect", { ...attrs, "data-variant": name, "data-size": size }, el("svg:title", {}, `${name}: ${format(value(v))}`)));
        const shown = format(value(v));
        const font = Math.max(10, Math.min(16, (bar - 2) / (0.6 * shown.length))); // a label fits its bar
        const text = { x: x + bar / 2 - 1, y: H - bottom - h - 5, "font-size": font.toFixed(1), "font-weight": 700 };
        svg.append(el("svg:text", { ...text, "text-anchor": "middle", "data-variant": name, "data-size": size }, shown));
      });
    });
    svg.append(el("svg:line", { x1: side, x2: W - side, y1: H - bottom, y2: H - bottom, stroke: "#444" }));
    return svg;
  }

  function draw() {
    if (!chart || runs.size === 0) return;
    const sizes = [...new Set([...demo, ...runs.keys()])].sort((a, b) => a - b);
    const variants = []; // compare's order, across the runs
    for (const run of runs.values()) for (const v of run.variants) if (!variants.includes(v.variant)) variants.push(v.variant);
    const palette = colors(variants);
    const metrics = [
      ["statements", (v) => v.statements, fmt],
      ["wall ms", (v) => v.wall_ms, ms],
      ["peak memory, MiB", (v) => v.peak_memory_bytes, (bytes) => mib(bytes).replace(" MiB", "")],
    ].filter(([, value]) => [...runs.values()].some((r) => r.variants.some((v) => value(v) != null)));
    const legend = el("div", { class: "legend" }, ...variants.map((name, j) => el("span", { style: `--swatch: ${palette[j]}` }, name)));
    const charts = metrics.map(([title, value, format]) => bars(title, sizes, variants, palette, value, format));
    chart.querySelector(".charts").replaceChildren(...charts);
    chart.querySelector(".legend")?.remove();
    chart.querySelector("figcaption").after(legend);
    chart.hidden = false;
  }

  async function run(sizes) {
    const buttons = box.querySelectorAll("button");
    for (const button of buttons) button.disabled = true;
    status.className = "status";
    const started = performance.now();
    try {
      for (const [i, size] of sizes.entries()) {
        const of = sizes.length > 1 ? ` (${i + 1} of ${sizes.length})` : "";
        status.textContent = `Running every variant ${at(size)}${of}…`;
        const result = await compare(size);
        results.replaceChildren(table(result));
        if (result.size != null) runs.set(result.size, result);
        draw();
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const where = sizes.length > 1 ? `at ${sizes.slice(0, -1).map(fmt).join(", ")} and ${at(sizes.at(-1)).slice(3)}` : at(sizes[0]);
      status.textContent = `Done ${where}, in ${seconds} s.`;
    } catch (error) {
      status.className = "status error";
      status.textContent = error.message;
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run([input && input.value ? Number(input.value) : null]);
  });
  for (const button of box.querySelectorAll(".demo-size")) {
    button.addEventListener("click", () => {
      input.value = button.dataset.size;
      run([Number(button.dataset.size)]);
    });
  }
  document.getElementById("run-demo")?.addEventListener("click", () => run(demo));
})();
