/* LEAP engagement widget: <leap-engagement student="S1000001" api="https://leap.example.ac.uk">.
 *
 * One file, no framework, no build step. It renders a student's engagement record from ONE
 * call (GET {api}/v1/students/{student}/engagement) inside its shadow DOM.
 * The bearer token comes from the host page: the `token` attribute, or (better, as portal
 * tokens expire) a `getToken` property, a function returning the token or a promise of it.
 * The element's `state` attribute says what it shows: loading, ready, not-available,
 * unavailable, signed-out or error. Styles use a constructed stylesheet, so a page whose
 * Content-Security-Policy forbids inline styles and scripts can embed it.
 */
(() => {
  "use strict";

  // Weight and daily cap per source, per policy version (leap/policies/*.toml; a test
  // keeps them equal). Used to split each day's points by activity and to explain them.
  const RULES = {"2026.1": {"attendance": [10.0, 4], "submission": [6.0, 2], "lecture_capture": [0.1, 120], "moodle": [0.25, 40], "computer_login": [1.5, 3], "library": [1.5, 3]}};

  // Source: [name, unit, units, colour (>= 3:1 on white)].
  const SOURCES = {
    attendance: ["Classes attended", "class", "classes", "#1f5fa6"],
    submission: ["Coursework handed in", "piece", "pieces", "#6f3fb5"],
    lecture_capture: ["Listen Again", "minute", "minutes", "#00756a"],
    moodle: ["Moodle", "action", "actions", "#a35200"],
    computer_login: ["Computer log-ins", "log-in", "log-ins", "#56606d"],
    library: ["Library", "visit", "visits", "#a3336b"],
  };

  // Level: [icon shape, path (24x24), colour (>= 4.5:1 on white)]. Never colour alone:
  // each level has its own shape, and its label is always written next to it.
  const LEVELS = {
    high: ["star", "M12 2l2.9 6.3 6.9.7-5.2 4.6 1.5 6.8L12 17l-6.1 3.4 1.5-6.8L2.2 9l6.9-.7z", "#0a6b3d"],
    good: ["circle", "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "#1f5fa6"],
    partial: ["diamond", "M12 2l10 10-10 10L2 12z", "#7a5700"],
    low: ["triangle", "M2.5 5h19L12 21.5z", "#a8431a"],
    very_low: ["octagon", "M8 2h8l6 6v8l-6 6H8l-6-6V8z", "#a3122a"],
  };

  const SVG = "http://www.w3.org/2000/svg";

  /** An element (SVG ones when ns is given) with attributes and children (strings as text). */
  function h(tag, attrs, children, ns) {
    const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) el.setAttribute(name, value);
    }
    for (const child of [].concat(children || [])) {
      if (child !== null && child !== undefined) el.append(child);
    }
    return el;
  }
  const s = (tag, attrs, children) => h(tag, attrs, children, SVG);

  const num = (n, digits = 1) => Number(n.toFixed(digits)).toLocaleString("en-GB");
  const day = (iso, long) =>
    new Date(iso + "T12:00:00Z").toLocaleDateString("en-GB", long
      ? { weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: "UTC" }
      : { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
  const nextDay = (iso) => new Date(Date.parse(iso + "T12:00:00Z") + 864e5).toISOString().slice(0, 10);

  /** The level's icon: a shape of its own, hidden from screen readers (the label is text). */
  function icon(level, size = 28) {
    const [shape, path, colour] = LEVELS[level] || LEVELS.partial;
    return s("svg", { class: "icon", "data-shape": shape, viewBox: "0 0 24 24", width: size, height: size, "aria-hidden": "true", focusable: "false" },
      s("path", { d: path, fill: colour }));
  }

  /** Each source's points that day: weight x min(units, cap), as the policy counts them. */
  function points(sources, rules) {
    return Object.entries(sources).map(([src, units]) => {
      const [weight, cap] = rules[src] || [0, 0];
      return [src, weight * Math.min(units, cap), units];
    });
  }

  const CSS = `
:host { display: block; font: 16px/1.45 system-ui, sans-serif; color: #1a1a1a; max-width: 40rem; }
.card { background: #fff; border: 1px solid #767676; border-radius: 8px; padding: 1rem; }
h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
.level { display: flex; align-items: center; gap: .5rem; font-size: 1.5rem; font-weight: 700; margin: .25rem 0; }
.meta, .note, .today, figcaption, .legend, table { font-size: .95rem; }
.note { border-left: 4px solid #56606d; padding: .25rem .5rem; background: #f2f2f2; }
dl { display: flex; flex-wrap: wrap; gap: .25rem 1.5rem; margin: .5rem 0; }
dt { font-size: .9rem; color: #444; } dd { margin: 0; font-weight: 700; }
figure { margin: .75rem 0; } svg.chart { width: 100%; height: auto; display: block; }
.legend { list-style: none; padding: 0; margin: .25rem 0; display: flex; flex-wrap: wrap; gap: .25rem .75rem; }
.legend svg { vertical-align: -2px; margin-right: .25rem; }
button { font: inherit; font-size: .95rem; color: #0b4f8a; background: #fff; border: 1px solid #0b4f8a; border-radius: 4px; padding: .35rem .7rem; margin: .25rem 0; cursor: pointer; min-height: 24px; }
button:focus-visible { outline: 3px solid #1a1a1a; outline-offset: 2px; }
table { border-collapse: collapse; margin: .5rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #b0b0b0; padding: .2rem .4rem; text-align: right; }
th[scope=row], thead th:first-child { text-align: left; }
.how ol { padding-left: 1.25rem; } .how li { margin: .25rem 0; }
[hidden] { display: none !important; }
`;
  let sheet = null;
  function styles() {
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
    }
    return sheet;
  }

  class LeapEngagement extends HTMLElement {
    static get observedAttributes() { return ["student", "api", "token"]; }
    static icon(level, size) { return icon(level, size); }

    constructor() {
      super();
      this.attachShadow({ mode: "open" }).adoptedStyleSheets = [styles()];
      this.loads = 0;
    }

    connectedCallback() { this.load(); }
    attributeChangedCallback() { if (this.isConnected) this.load(); }

    async token() {
      const given = this.getAttribute("token");
      if (given) return given;
      return typeof this.getToken === "function" ? await this.getToken() : null;
    }

    show(state, nodes) {
      this.setAttribute("state", state);
      const heading = this.getAttribute("heading") || "Your engagement (LEAP)";
      this.shadowRoot.replaceChildren(h("section", { class: "card", "aria-labelledby": "t" },
        [h("h2", { id: "t" }, heading)].concat(nodes)));
    }

    say(state, ...lines) {
      this.show(state, h("div", { role: "status" }, lines.map((line) => h("p", {}, line))));
    }

    async load() {
      const student = this.getAttribute("student");
      if (!student) return;
      const load = ++this.loads;
      this.say("loading", "Loading…");
      const base = (this.getAttribute("api") || "").replace(/\/+$/, "");
      let response = null;
      try {
        const token = await this.token();
        if (!token) {
          if (load === this.loads) this.say("signed-out", "Sign in to your portal to see your engagement.");
          return;
        }
        response = await fetch(`${base}/v1/students/${encodeURIComponent(student)}/engagement`, {
          headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
          cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
        });
        const record = response.ok ? await response.json() : null;
        if (load !== this.loads) return;
        if (record) return this.render(record);
      } catch (_) {
        response = null;
      }
      if (load !== this.loads) return;
      const status = response ? response.status : 0;
      if (status === 404) {
        this.say("not-available", "Not available: there is no engagement indicator to show here.",
          "LEAP gives indicators only to students on courses taking part, once the first days of term have been counted. If you expected one, ask your personal tutor.");
      } else if (status === 401) {
        this.say("signed-out", "Your sign-in has expired. Sign in again to see your engagement.");
      } else {
        const retry = h("button", { type: "button" }, "Try again");
        retry.addEventListener("click", () => this.load());
        const what = status === 0 || status >= 502
          ? "LEAP cannot be reached just now. Nothing is wrong with your record; please try again in a few minutes."
          : `Your engagement could not be shown just now (error ${status}). Please try again later.`;
        this.show(status === 0 || status >= 502 ? "unavailable" : "error",
          h("div", { role: "status" }, [h("p", {}, what), retry]));
      }
    }

    render(r) {
      const rules = RULES[r.policy_version];
      const nodes = [
        h("p", { class: "level", "data-level": r.indicator }, [icon(r.indicator), h("span", { class: "label" }, r.label)]),
        h("p", { class: "meta" }, `Your average over the ${r.window_days} days to ${day(r.as_of, true)}, compared with others on your course and year.`),
      ];
      if (r.stale) {
        nodes.push(h("p", { class: "note stale" }, `These are the newest figures, from ${day(r.as_of, true)}: later days have not been counted yet.`));
      }
      if (r.holiday) {
        nodes.push(h("p", { class: "note holiday" }, `${r.holiday.name} (${day(r.holiday.start)} to ${day(r.holiday.end)}): indicators are still worked out in holidays, but a quiet week then means little.`));
      }
      nodes.push(h("dl", {}, [
        h("div", {}, [h("dt", {}, `${r.window_days}-day average`), h("dd", { class: "score" }, `${num(r.score)} points a day`)]),
        h("div", {}, [h("dt", {}, "Typical for your course and year"), h("dd", { class: "reference" }, `${num(r.reference_score)} points a day`)]),
      ]));
      const today = r.today_so_far;
      nodes.push(h("p", { class: "today" }, today
        ? `So far on ${day(today.date)}: ${num(today.engagement)} points (it counts once the day is over).`
        : `Nothing counted yet for ${day(nextDay(r.as_of))}.`));
      nodes.push(this.chart(r, rules), this.explanation(rules, r.policy_version));
      this.show("ready", nodes);
    }

    /** Stacked bars of each day's points by activity, the typical score as a dashed line,
     * and the same numbers as a table behind a button. */
    chart(r, rules) {
      const days = r.days;
      const width = 320, height = 170, top = 14, bottom = 150, left = 4;
      const max = Math.max(r.reference_score, ...days.map((d) => d.engagement), 1) * 1.1;
      const y = (v) => bottom - (v / max) * (bottom - top);
      const slot = (width - left) / days.length;
      const bar = Math.min(30, slot * 0.7);
      const used = new Set();
      const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
        "aria-label": `Points per day from ${day(days[0].date)} to ${day(days[days.length - 1].date)}: ` +
          days.map((d) => `${day(d.date)} ${num(d.engagement)}`).join(", ") +
          `. Typical for your course and year: ${num(r.reference_score)}.` });
      svg.append(s("line", { x1: 0, x2: width, y1: bottom, y2: bottom, stroke: "#767676" }));
      days.forEach((d, i) => {
        const x = left + i * slot + (slot - bar) / 2;
        let base = d.engagement;
        const parts = rules ? points(d.sources, rules).filter(([, p]) => p > 0) : [];
        const total = parts.reduce((sum, [, p]) => sum + p, 0);
        if (parts.length && Math.abs(total - d.engagement) < 0.01) {
          for (const [src, p] of parts) {
            used.add(src);
            svg.append(s("rect", { x, width: bar, y: y(base), height: y(base - p) - y(base), fill: (SOURCES[src] || [])[3] || "#56606d", "data-source": src, "data-date": d.date }));
            base -= p;
          }
        } else if (d.engagement > 0) {
          svg.append(s("rect", { x, width: bar, y: y(d.engagement), height: bottom - y(d.engagement), fill: "#56606d" }));
        }
        const mid = x + bar / 2;
        svg.append(s("text", { x: mid, y: y(d.engagement) - 3, "text-anchor": "middle", "font-size": 10, fill: "#1a1a1a" }, num(d.engagement, 0)));
        svg.append(s("text", { x: mid, y: bottom + 13, "text-anchor": "middle", "font-size": 10, fill: "#1a1a1a" },
          days.length > 10 ? d.date.slice(8) : day(d.date).split(" ")[0]));
      });
      svg.append(s("line", { x1: 0, x2: width, y1: y(r.reference_score), y2: y(r.reference_score), stroke: "#1a1a1a", "stroke-dasharray": "5 4" }));
      const legend = h("ul", { class: "legend" }, [...used].map((src) => h("li", {}, [
        s("svg", { width: 12, height: 12, "aria-hidden": "true" }, s("rect", { width: 12, height: 12, fill: SOURCES[src][3] })),
        SOURCES[src][0]])).concat(h("li", {}, "- - - typical for your course and year")));
      const sources = Object.keys(SOURCES).filter((src) => days.some((d) => src in d.sources));
      const table = h("table", { id: "numbers", hidden: true }, [
        h("caption", {}, "Points per day, and what was counted"),
        h("thead", {}, h("tr", {}, [h("th", { scope: "col" }, "Day"), h("th", { scope: "col" }, "Points")]
          .concat(sources.map((src) => h("th", { scope: "col" }, `${SOURCES[src][0]} (${SOURCES[src][2]})`))))),
        h("tbody", {}, days.map((d) => h("tr", { "data-date": d.date }, [h("th", { scope: "row" }, day(d.date)), h("td", { class: "points" }, num(d.engagement))]
          .concat(sources.map((src) => h("td", {}, num(d.sources[src] || 0)))))))]);
      return h("figure", {}, [h("figcaption", {}, `Points per day, by activity (${days.length} days)`), svg, legend,
        this.disclosure("Show the numbers as a table", "Hide the table", table), table]);
    }

    /** The README's "How your indicator is worked out", shortened, with this policy's numbers. */
    explanation(rules, version) {
      const list = rules
        ? Object.entries(rules).map(([src, [weight, cap]]) => {
          const [name, unit, units] = SOURCES[src] || [src, "unit", "units"];
          return `${name}: ${num(weight, 2)} points a ${unit}, up to ${cap} ${cap === 1 ? unit : units} a day`;
        }).join("; ")
        : "each activity has its own weight and daily limit";
      const panel = h("div", { class: "how", id: "how", hidden: true }, h("ol", {}, [
        "Everything you do counts towards that day, as the clock on the wall at the university sees it.",
        `Each kind of activity has a weight and a daily limit (${list}). Past the limit, more of the same adds nothing.`,
        "Your score is your average daily points over the last 7 days (21 for part-time students); days with nothing count as zero.",
        "It is compared with the typical (median) score of your course and year: 1.5 times or more is High; from 0.8 times, Good; from 0.45, Partial; from 0.15, Low; below that, or nothing at all, Very Low. Small cohorts (under 20) are compared with 12 points a day.",
        `It is a prompt for a conversation with your tutor, never a decision: nothing acts on it automatically. (Rules version ${version}.)`,
      ].map((text) => h("li", {}, text))));
      return h("div", {}, [this.disclosure("How is this worked out?", "Hide how this is worked out", panel), panel]);
    }

    /** A real button that shows and hides `panel`, announcing its state (aria-expanded). */
    disclosure(open, close, panel) {
      const button = h("button", { type: "button", "aria-expanded": "false", "aria-controls": panel.id }, open);
      button.addEventListener("click", () => {
        const expanded = panel.hidden;
        panel.hidden = !expanded;
        button.setAttribute("aria-expanded", String(expanded));
        button.textContent = expanded ? close : open;
      });
      return button;
    }
  }

  if (!customElements.get("leap-engagement")) customElements.define("leap-engagement", LeapEngagement);
})();
