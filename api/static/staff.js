/* LEAP staff page: a tutor's tutees (most in need first), cohort distributions, and a
 * drill-down into a student's record with the same widget the student sees.
 *
 * The bearer token comes from the portal as a URL fragment (#token=…, never sent to a
 * server) or is pasted in; it is kept in sessionStorage (this tab only) and the fragment is
 * wiped at once. Which view opens is the fragment too: #tutor=ID, #course=C&year=Y,
 * #student=ID. The token's claims only choose the first view; the API decides what is shown.
 */
(() => {
  "use strict";

  const KEY = "leap.token";
  const LEVELS = [["very_low", "Very Low"], ["low", "Low"], ["partial", "Partial"], ["good", "Good"], ["high", "High"]];
  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) el.setAttribute(name, value);
    }
    for (const child of [].concat(children || [])) {
      if (child !== null && child !== undefined) el.append(child);
    }
    return el;
  }
  const icon = (level) => customElements.get("leap-engagement").icon(level, 20);
  const date = (iso) => new Date(iso + "T12:00:00Z").toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });

  /** The fragment's parameters, after moving a token in it to sessionStorage. */
  function fragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get("token");
    if (token) {
      sessionStorage.setItem(KEY, token);
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
    }
    return params;
  }

  /** The token's claims (unverified: they only pick the first view), or null if unusable. */
  function claims() {
    const token = sessionStorage.getItem(KEY);
    if (!token) return null;
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const body = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
      return body.exp * 1000 > Date.now() ? body : null;
    } catch (_) {
      return null;
    }
  }

  async function api(path) {
    try {
      const response = await fetch(path, {
        headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}`, Accept: "application/json" },
        cache: "no-store", credentials: "omit",
      });
      return { status: response.status, body: response.ok ? await response.json() : null };
    } catch (_) {
      return { status: 0, body: null };
    }
  }

  function show(...nodes) {
    $("view").replaceChildren(...nodes);
  }

  /** A refusal or outage in words; a 401 sends the reader back to sign in. */
  function problem(status, notFound) {
    if (status === 401) {
      sessionStorage.removeItem(KEY);
      return signIn("Your sign-in has expired: open this page from your portal again, or paste a new token.");
    }
    const text = status === 404 ? notFound
      : status === 0 || status >= 502 ? "LEAP is not available just now. Please try again in a few minutes."
        : `This could not be shown (error ${status}). Please try again later.`;
    show(h("p", { class: "notice", role: "status", "data-status": status }, text));
  }

  function signIn(message) {
    $("sign-in").hidden = false;
    $("views").hidden = $("sign-out").hidden = true;
    $("who").textContent = message || "";
    show();
  }

  function levelCell(entry) {
    return entry.indicator
      ? h("span", { class: "level", "data-level": entry.indicator }, [icon(entry.indicator), " ", entry.label])
      : h("span", { class: "level" }, "Not scored yet");
  }

  function trendCell(trend) {
    if (trend === null) return h("span", {}, "No indicator a week ago");
    if (trend <= -2) return h("strong", { class: "dropped" }, `Dropped ${-trend} bands this week`);
    if (trend < 0) return h("span", {}, "1 band lower");
    if (trend > 0) return h("span", {}, `${trend} band${trend > 1 ? "s" : ""} higher`);
    return h("span", {}, "Same band");
  }

  async function tutorView(tutor) {
    show(h("p", { role: "status" }, "Loading tutees…"));
    const { status, body } = await api(`/v1/tutors/${encodeURIComponent(tutor)}/tutees`);
    if (!body) return problem(status, `Not available: there are no tutees of ${tutor} that you may see.`);
    const tutees = body.tutees;
    const dropped = tutees.filter((t) => t.trend !== null && t.trend <= -2).length;
    const levelFilter = h("select", { id: "level-filter" }, [h("option", { value: "" }, "All indicators")]
      .concat(LEVELS.map(([value, label]) => h("option", { value }, label)), h("option", { value: "none" }, "Not scored yet")));
    const cohortOf = (t) => `${t.course} year ${t.year}`;
    const cohorts = [...new Set(tutees.map(cohortOf))].sort();
    const cohortFilter = h("select", { id: "cohort-filter" }, [h("option", { value: "" }, "All cohorts")]
      .concat(cohorts.map((c) => h("option", { value: c }, c))));
    const rows = tutees.map((t) => h("tr", { "data-student": t.student_id, "data-level": t.indicator || "none", "data-cohort": cohortOf(t), class: t.trend !== null && t.trend <= -2 ? "dropped" : null }, [
      h("th", { scope: "row" }, h("a", { href: `#student=${encodeURIComponent(t.student_id)}` }, t.student_id)),
      h("td", {}, levelCell(t)),
      h("td", { class: "num" }, t.score === null ? "–" : t.score.toFixed(1)),
      h("td", {}, trendCell(t.trend)),
      h("td", { class: "contact" }, t.contact_allowed ? "" : h("strong", { class: "no-contact" }, "Do not contact")),
    ]));
    const count = h("p", { id: "shown", role: "status" });
    const filter = () => {
      let shown = 0;
      for (const row of rows) {
        row.hidden = (Boolean(levelFilter.value) && row.dataset.level !== levelFilter.value)
          || (Boolean(cohortFilter.value) && row.dataset.cohort !== cohortFilter.value);
        shown += row.hidden ? 0 : 1;
      }
      count.textContent = `Showing ${shown} of ${tutees.length} tutees.`;
    };
    levelFilter.addEventListener("change", filter);
    cohortFilter.addEventListener("change", filter);
    filter();
    const asOf = tutees.find((t) => t.as_of);
    show(
      h("h2", {}, `Tutees of ${tutor}`),
      h("p", {}, [`Most in need of a conversation first${asOf ? `, as of ${date(asOf.as_of)}` : ""}. `,
        dropped ? h("strong", {}, `${dropped} dropped two or more bands this week.`) : "Nobody dropped two bands this week."]),
      h("div", { class: "filters" }, [
        h("label", { for: "level-filter" }, "Indicator"), levelFilter,
        h("label", { for: "cohort-filter" }, "Cohort"), cohortFilter,
      ]),
      count,
      h("div", { class: "scroll" }, h("table", { id: "tutees" }, [
        h("caption", {}, `Tutees of ${tutor}, by indicator and then by change since a week before`),
        h("thead", {}, h("tr", {}, ["Student", "Indicator", "7-day average", "Change in a week", "Contact"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows),
      ])),
    );
  }

  async function cohortView(course, year) {
    show(h("p", { role: "status" }, "Loading the cohort…"));
    const { status, body } = await api(`/v1/cohorts/${encodeURIComponent(course)}/${encodeURIComponent(year)}/distribution`);
    if (!body) return problem(status, `Not available: there is no distribution of ${course} year ${year} that you may see.`);
    const most = Math.max(1, ...Object.values(body.counts));
    const rows = LEVELS.slice().reverse().map(([level, label]) => {
      const n = body.counts[level];
      const bar = h("span", { class: `bar ${level}` });
      bar.style.width = `${(100 * n) / most}%`;
      return h("tr", { "data-level": level }, [
        h("th", { scope: "row" }, h("span", { class: "level" }, [icon(level), " ", label])),
        h("td", { class: "num" }, String(n)),
        h("td", { class: "num" }, `${body.size ? Math.round((100 * n) / body.size) : 0}%`),
        h("td", { class: "bar-cell", "aria-hidden": "true" }, bar),
      ]);
    });
    show(
      h("h2", {}, `${course} year ${year}`),
      h("p", {}, `${body.size} students, as of ${date(body.as_of)}; typical score ${body.reference_score.toFixed(1)} points a day.`),
      body.stale ? h("p", { class: "notice" }, "These are the newest figures: later days have not been counted yet.") : "",
      h("table", { id: "distribution" }, [
        h("caption", {}, `How many students of ${course} year ${year} are at each level`),
        h("thead", {}, h("tr", {}, ["Indicator", "Students", "Share", "Chart"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows),
      ]),
    );
  }

  function studentView(student, own) {
    const widget = h("leap-engagement", { student, heading: own ? null : `Engagement of ${student}` });
    widget.getToken = () => sessionStorage.getItem(KEY);
    show(own ? "" : h("p", {}, "What the student sees in their portal."), widget);
  }

  function route() {
    const params = fragment();
    const who = claims();
    if (!who) return signIn(sessionStorage.getItem(KEY) ? "Your sign-in has expired: open this page from your portal again." : "");
    $("sign-in").hidden = true;
    $("views").hidden = who.role === "student";
    $("sign-out").hidden = false;
    $("who").textContent = `Signed in as ${who.sub} (${who.role}${who.department ? `, ${who.department}` : ""}).`;
    if (params.get("student")) return studentView(params.get("student"), params.get("student") === who.sub);
    if (params.get("tutor")) return tutorView(params.get("tutor"));
    if (params.get("course")) return cohortView(params.get("course"), params.get("year") || "1");
    if (who.role === "tutor") return tutorView(who.sub);
    if (who.role === "student") return studentView(who.sub, true);
    // Department staff and admins see aggregates first: a cohort to choose.
    show(h("p", {}, "Choose a cohort above to see how many of its students are at each level, or a tutor to see their tutees."));
    $("course-input").focus();
  }

  function go(params) {
    location.hash = new URLSearchParams(params).toString();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("token-input").value.trim());
      $("token-input").value = "";
      route();
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      history.replaceState(null, "", location.pathname);
      signIn("Signed out.");
    });
    $("tutor-form").addEventListener("submit", (event) => {
      event.preventDefault();
      go({ tutor: $("tutor-input").value.trim() });
    });
    $("cohort-form").addEventListener("submit", (event) => {
      event.preventDefault();
      go({ course: $("course-input").value.trim(), year: $("year-input").value.trim() });
    });
    $("student-form").addEventListener("submit", (event) => {
      event.preventDefault();
      go({ student: $("student-input").value.trim() });
    });
    window.addEventListener("hashchange", route);
    route();
  });
})();
