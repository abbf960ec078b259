// The SkyDriver dashboard: sign in with a token, the scans list, a scan's live page with its skymap,
// alerts and catalogs. Views are chosen by the URL's fragment (#/scans/ID); the token never is in it.

import { ApiError, download, followEvents, request, token } from "./api.js";
import { FullSkyView, PixelIndex, REFERENCE_STYLES, TRUTH_COLOUR, ZoomView, contourColour, zoomHalfWidthDeg } from "./skymap.js";

const meta = (name) => document.querySelector(`meta[name="${name}"]`).content.split(",").filter(Boolean);
const FORMATS = meta("skydriver-formats");
const STATES = meta("skydriver-states");
const TERMINAL = ["completed", "failed", "aborted"];
const LIST_REFRESH_MS = 2000;
const RESULT_REFRESH_MS = 1000;
const CONTOUR_REFRESH_MS = 5000;

// What the page shows, for people reading the console and for the browser tests.
const state = (window.skydriver = { identity: null, view: null, list: null, scan: null, alerts: null, catalog: null });

let active = null; // the current view's AbortController: leaving a view stops its streams and timers

// -- small DOM helpers (text only: ids, owners and reasons come from users) --------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") el.style.cssText = value; // CSSOM: allowed by the page's CSP, unlike style=""
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  el.append(...present(children));
  return el;
}

// without the null/false of conditional parts (the DOM would print them as text)
const present = (children) => children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);

function fill(el, ...children) {
  el.replaceChildren(...present(children));
  return el;
}

const $ = (selector) => document.querySelector(selector);
const enc = encodeURIComponent;
const fmt = (value, digits = 2) => (value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits));

function badge(scanState) {
  return h("span", { class: `badge ${scanState}`, dataset: { state: scanState } }, scanState);
}

function age(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function showMessage(text) {
  const box = $("#message");
  box.textContent = text || "";
  box.hidden = !text;
}

function fail(err) {
  if (err.name === "AbortError") return;
  if (err instanceof ApiError && err.status === 401) {
    token.clear();
    state.identity = null;
    return signInView(err.message);
  }
  showMessage(err.message);
}

function render(...children) {
  const view = $("#view");
  fill(view, ...children);
  return view;
}

function later(signal, ms, fn) {
  const timer = setTimeout(fn, ms);
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
}

// -- routing -----------------------------------------------------------------------------------------
async function route() {
  if (active) active.abort();
  active = new AbortController();
  const signal = active.signal;
  showMessage("");
  const [path, query] = (location.hash.slice(1) || "/scans").split("?");
  if (!token.get()) return signInView();
  if (!state.identity) {
    try {
      state.identity = await request("/api/v1/whoami", { signal });
    } catch (err) {
      return fail(err);
    }
  }
  showIdentity();
  const [section, id] = path.split("/").filter(Boolean);
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === (section || "scans")));
  try {
    if (section === "scans" && id) return await scanView(decodeURIComponent(id), signal);
    if (section === "alerts") return await alertsView(signal);
    if (section === "catalogs" && id) return await catalogView(decodeURIComponent(id), signal);
    if (section === "catalogs") return await catalogsView(signal);
    return await scansView(new URLSearchParams(query || ""), signal);
  } catch (err) {
    fail(err);
  }
}

function showIdentity() {
  const who = state.identity;
  $("#identity-name").textContent = who.name;
  $("#identity-role").textContent = who.role;
  $("#identity").hidden = false;
  $("#nav").hidden = false;
}

// -- sign in -----------------------------------------------------------------------------------------
function signInView(problem) {
  state.view = "sign-in";
  $("#identity").hidden = true;
  $("#nav").hidden = true;
  showMessage(problem || "");
  // no `name` on the input and method=post: even without this script the token cannot reach a URL
  const input = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "sd_...", required: true });
  const form = h(
    "form",
    { id: "sign-in", method: "post", action: "#", class: "panel signin", onsubmit: (e) => signIn(e, input) },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste a SkyDriver token (from 'skydriver tokens create' or an admin). It is kept in this tab only."),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  render(form);
  input.focus();
}

async function signIn(event, input) {
  event.preventDefault();
  const value = input.value.trim();
  if (!value) return;
  token.set(value);
  try {
    state.identity = await request("/api/v1/whoami");
  } catch (err) {
    token.clear();
    return signInView(err.message);
  }
  input.value = "";
  route();
}

function signOut() {
  token.clear();
  state.identity = null;
  if (active) active.abort();
  signInView();
}

// -- scans list --------------------------------------------------------------------------------------
async function scansView(params, signal) {
  state.view = "scans";
  let limit = 50;
  const field = (name, control) => h("label", {}, name, control);
  const stateSelect = h("select", { id: "filter-state" }, h("option", { value: "" }, "any"), STATES.map((s) => h("option", { value: s }, s)));
  const reco = h("input", { id: "filter-reco", size: 12 });
  const owner = h("input", { id: "filter-owner", size: 12 });
  const runId = h("input", { id: "filter-run", type: "number", min: 0, size: 10 });
  const sort = h("select", { id: "filter-sort" }, ["-created_at", "created_at", "-priority", "priority"].map((s) => h("option", { value: s }, s)));
  const controls = { state: stateSelect, reco, owner, run_id: runId, sort };
  for (const [key, control] of Object.entries(controls)) control.value = params.get(key) || (key === "sort" ? "-created_at" : "");
  const filters = h(
    "form",
    {
      class: "filters",
      onsubmit: (e) => {
        e.preventDefault();
        const query = new URLSearchParams();
        for (const [key, control] of Object.entries(controls)) if (control.value) query.set(key, control.value);
        location.hash = `#/scans?${query}`;
      },
    },
    field("State", stateSelect),
    field("Reco", reco),
    field("Owner", owner),
    field("Run", runId),
    field("Sort", sort),
    h("button", { type: "submit" }, "Filter"),
  );
  const body = h("tbody");
  const live = h("span", { class: "live", id: "list-updated" }, "connecting");
  const more = h("button", { type: "button", hidden: true, onclick: () => { limit = Math.min(limit + 50, 500); refresh(); } }, "More");
  render(
    h("div", { class: "panel" }, h("h1", {}, "Scans"), filters),
    h(
      "div",
      { class: "panel" },
      h(
        "table",
        { id: "scans" },
        h("thead", {}, h("tr", {}, ["Scan", "State", "Progress", "Reco", "Owner", "Priority", "Age", "Best fit (RA, Dec)"].map((c) => h("th", {}, c)))),
        body,
      ),
      h("div", { class: "toolbar" }, live, more),
    ),
  );

  async function refresh() {
    const query = new URLSearchParams(params);
    query.set("limit", String(limit));
    let page;
    try {
      page = await request(`/api/v1/scans?${query}`, { signal });
    } catch (err) {
      fail(err);
      if (!signal.aborted && !(err instanceof ApiError && err.status < 500)) later(signal, LIST_REFRESH_MS, refresh);
      return;
    }
    fill(body, ...page.scans.map(scanRow));
    if (!page.scans.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No scans match.")));
    more.hidden = !page.next_cursor || limit >= 500;
    live.textContent = `live, updated ${new Date().toLocaleTimeString()}`;
    state.list = { count: page.scans.length, scans: page.scans.map((s) => ({ scan_id: s.scan_id, state: s.state, tasks_done: s.progress.tasks_done })) };
    later(signal, LIST_REFRESH_MS, refresh);
  }
  await refresh();
}

function scanRow(scan) {
  const prog = scan.progress || {};
  const best = scan.best_fit;
  return h(
    "tr",
    { dataset: { scanId: scan.scan_id, state: scan.state } },
    h("td", {}, h("a", { href: `#/scans/${enc(scan.scan_id)}` }, scan.scan_id.slice(0, 12))),
    h("td", {}, badge(scan.state)),
    h("td", {}, h("progress", { value: prog.tasks_done || 0, max: Math.max(prog.tasks_sent || 0, 1) }), ` ${prog.tasks_done || 0}/${prog.tasks_sent || 0}`),
    h("td", {}, scan.reco),
    h("td", {}, scan.owner),
    h("td", { class: "num" }, String(scan.priority)),
    h("td", { title: scan.created_at }, age(scan.created_at)),
    h("td", {}, best ? `${fmt(best.ra_deg)}°, ${fmt(best.dec_deg)}°` : "–"),
  );
}

// -- one scan ----------------------------------------------------------------------------------------
function mayManage(scan) {
  const who = state.identity;
  return who.role === "admin" || (who.role === "submitter" && scan.owner === who.name);
}

async function scanView(scanId, signal) {
  state.view = "scan";
  const path = `/api/v1/scans/${enc(scanId)}`;
  const seen = (state.scan = { id: scanId, state: null, states: [], progress: [], draws: [], complete: false, fullSky: null, zoom: null, lastEventId: null, connection: "" });
  let status = await request(path, { signal });

  const head = h("div", { class: "panel", id: "scan-head" });
  const progressPanel = h("div", { class: "panel", id: "progress" });
  const unresolved = h("div", { class: "warning", id: "unresolved", hidden: true });
  const fullCanvas = h("canvas", { id: "fullsky", width: 720, height: 360 });
  const zoomCanvas = h("canvas", { id: "zoom", width: 480, height: 480 });
  const readout = h("div", { class: "readout", id: "readout" });
  const legendBox = fill(h("div", { class: "legend", id: "legend" }), legendItems(null));
  const numbers = h("div", { class: "panel", id: "numbers" }, h("h2", {}, "Best fit and errors"), h("p", { class: "muted" }, "No fit yet."));
  const history = h("ol", { class: "history", id: "history" });
  const connection = h("span", { class: "live", id: "connection" }, "connecting");
  const downloadNote = h("span", { class: "muted", id: "download-note" });
  const downloads = h(
    "div",
    { class: "panel" },
    h("h2", {}, "Downloads"),
    h("div", { class: "downloads" }, FORMATS.map((f) => h("button", { type: "button", dataset: { format: f }, onclick: () => fetchProduct(f) }, f))),
    h("div", { class: "toolbar" }, downloadNote),
  );
  const zoomView = new ZoomView(zoomCanvas, {
    onMove: (d) => {
      const ts = index ? index.tsAt(Math.sin((d.dec * Math.PI) / 180), (d.ra * Math.PI) / 180) : undefined;
      readout.textContent = `RA ${fmt(d.ra, 3)}°, Dec ${fmt(d.dec, 3)}°, 2·ΔLLH ${ts === undefined ? "not fitted" : fmt(ts)}`;
    },
  });
  render(
    head,
    progressPanel,
    unresolved,
    h(
      "div",
      { class: "grid" },
      h("div", { class: "panel" }, h("h2", {}, "Full sky, 2·ΔLLH (RA grows to the left)"), fullCanvas, legendBox),
      h(
        "div",
        { class: "panel" },
        h("h2", { id: "zoom-title" }, "Zoom on the best fit"),
        zoomCanvas,
        h(
          "div",
          { class: "toolbar" },
          h("button", { type: "button", id: "zoom-in", onclick: () => zoomView.zoomBy(0.8) }, "+"),
          h("button", { type: "button", id: "zoom-out", onclick: () => zoomView.zoomBy(1.25) }, "−"),
          h("button", { type: "button", id: "zoom-reset", onclick: () => zoomView.goHome() }, "Reset"),
          h("span", { class: "muted" }, "wheel to zoom, drag to pan"),
        ),
        readout,
      ),
    ),
    numbers,
    downloads,
    h("div", { class: "panel" }, h("h2", {}, "History "), connection, history),
  );

  function renderHead() {
    const actions = h("div", { class: "actions" });
    if (!TERMINAL.includes(status.state) && mayManage(status)) {
      actions.append(h("button", { type: "button", class: "danger", id: "abort", onclick: abort }, "Abort"));
    }
    if (state.identity.may_submit) actions.append(h("button", { type: "button", id: "rescan", onclick: rescan }, "Rescan"));
    fill(head,
      h(
        "div",
        { class: "scan-head" },
        h("h1", {}, `Scan ${status.scan_id}`),
        h("span", { id: "scan-state", dataset: { state: status.state } }, badge(status.state)),
        actions,
      ),
      status.state_reason ? h("p", { id: "scan-reason" }, status.state_reason) : null,
      h(
        "div",
        { class: "facts" },
        fact("run", status.run_id),
        fact("event", status.event_id),
        fact("reco", status.reco),
        fact("nsides", status.nsides),
        fact("strategy", status.strategy),
        fact("owner", status.owner),
        fact("priority", status.priority),
        fact("created", `${age(status.created_at)} ago`),
        status.rescan_of ? h("span", {}, "rescan of ", h("a", { href: `#/scans/${enc(status.rescan_of)}` }, status.rescan_of.slice(0, 12))) : null,
        status.catalog_id ? h("span", {}, "catalog ", h("a", { href: `#/catalogs/${enc(status.catalog_id)}` }, status.catalog_id)) : null,
        status.alert ? fact("alert", status.alert.event_name || `${status.alert.run_id}:${status.alert.event_id}`) : null,
      ),
    );
  }

  function renderProgress(prog, scanState) {
    const nsides = Object.entries(prog.nsides || {}).sort((a, b) => Number(a[0]) - Number(b[0]));
    fill(progressPanel,
      h("h2", {}, "Progress"),
      h(
        "div",
        { class: "facts" },
        fact("fits", `${prog.tasks_done || 0} of ${prog.tasks_sent || 0} sent`),
        fact("rate", prog.rate_per_s ? `${fmt(prog.rate_per_s, 1)}/s` : "–"),
        fact("ETA", TERMINAL.includes(scanState) ? "done" : duration(prog.eta_s)),
      ),
      h(
        "table",
        { id: "nside-progress" },
        h("thead", {}, h("tr", {}, h("th", {}, "nside"), h("th", {}, ""), h("th", { class: "num" }, "done"), h("th", { class: "num" }, "sent"), h("th", { class: "num" }, "failed"))),
        h(
          "tbody",
          {},
          nsides.map(([nside, p]) =>
            h(
              "tr",
              { dataset: { nside, done: p.tasks_done || 0, sent: p.tasks_sent || 0 } },
              h("td", {}, nside),
              h("td", {}, h("progress", { value: p.tasks_done || 0, max: Math.max(p.tasks_sent || 0, 1) })),
              h("td", { class: "num" }, String(p.tasks_done || 0)),
              h("td", { class: "num" }, String(p.tasks_sent || 0)),
              h("td", { class: "num" }, String(p.pixels_failed || 0)),
            ),
          ),
        ),
      ),
    );
  }

  async function abort() {
    if (!confirm(`Abort scan ${status.scan_id}? Its processes stop; computed pixels stay.`)) return;
    try {
      status = await request(path, { method: "DELETE" });
      renderHead();
    } catch (err) {
      fail(err);
    }
  }

  async function rescan() {
    try {
      const created = await request(`${path}/rescan`, { method: "POST", body: {} });
      location.hash = `#/scans/${enc(created.scan_id)}`;
    } catch (err) {
      fail(err);
    }
  }

  async function fetchProduct(format) {
    downloadNote.textContent = `preparing ${format}...`;
    try {
      const name = await download(`${path}/result?format=${enc(format)}`, `${scanId}.${format === "json" ? "json" : format}`);
      downloadNote.textContent = `downloaded ${name}`;
    } catch (err) {
      downloadNote.textContent = err.message;
    }
  }

  // -- the map: re-read the result as pixels arrive, at most once a second ------------------------
  let result = null;
  let index = null;
  let geojson = null;
  let geojsonAt = 0;
  let fetching = false;
  let again = false;
  let lastFetch = 0;
  let zoomed = false;

  async function refreshResult(final = false) {
    if (fetching) {
      again = true;
      return;
    }
    const wait = lastFetch + RESULT_REFRESH_MS - Date.now();
    if (!final && wait > 0) {
      if (!again) later(signal, wait, () => refreshResult());
      again = true;
      return;
    }
    fetching = true;
    again = false;
    lastFetch = Date.now();
    try {
      result = await request(`${path}/result`, { signal });
      index = new PixelIndex(result);
      if (result.best_fit && (final || result.complete || Date.now() - geojsonAt > CONTOUR_REFRESH_MS)) {
        geojsonAt = Date.now();
        try {
          geojson = await request(`${path}/result?format=geojson`, { signal });
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 409)) throw err; // 409: no region yet
        }
      }
      drawMaps();
      renderNumbers(numbers, result);
      const flag = result.regions && result.regions.unresolved;
      unresolved.hidden = !flag;
      unresolved.textContent = flag ? `Warning: ${flag.message}.` : "";
      seen.complete = !!result.complete;
    } catch (err) {
      fail(err);
    } finally {
      fetching = false;
    }
    if (again && !signal.aborted) refreshResult(final);
  }

  function drawMaps() {
    if (!result) return;
    seen.fullSky = fullSkyView.draw(result, index, geojson);
    fill(legendBox, legendItems(result));
    fullCanvas.dataset.fitted = seen.fullSky.fitted;
    if (result.best_fit) {
      const best = result.best_fit;
      const half = zoomHalfWidthDeg(result, geojson, index.finestNside);
      if (!zoomed) zoomView.reset([best.ra_deg, best.dec_deg], half);
      else zoomView.home = { centre: [best.ra_deg, best.dec_deg], halfDeg: half };
      drawZoom();
    }
    seen.draws.push({ pixels: index.count, complete: !!result.complete, fitted: seen.fullSky.fitted });
  }

  function drawZoom() {
    const level90 = result.regions && result.regions.levels && result.regions.levels["90"];
    const top = Math.max(3 * (level90 ? level90.level : 4.61), 10);
    seen.zoom = zoomView.draw(result, index, geojson, top);
    seen.zoom.centre = zoomView.centre;
    seen.zoom.halfDeg = zoomView.halfDeg;
    zoomCanvas.dataset.contours = Object.entries(seen.zoom.contours).filter(([, n]) => n > 0).map(([level]) => level).sort().join(",");
    $("#zoom-title").textContent = `Zoom, gnomonic, ±${fmt(zoomView.halfDeg, 3)}° about ${fmt(zoomView.centre[0], 2)}°, ${fmt(zoomView.centre[1], 2)}°`;
  }

  const fullSkyView = new FullSkyView(fullCanvas);
  zoomView.redraw = () => {
    zoomed = true;
    drawZoom();
  };

  renderHead();
  renderProgress(status.progress || {}, status.state);
  await refreshResult();

  followEvents(
    `${path}/events`,
    (kind, data, lastEventId) => {
      seen.lastEventId = lastEventId;
      if (kind === "state") {
        seen.states.push(data.state);
        seen.state = data.state;
        history.append(h("li", { dataset: { state: data.state } }, `${data.state}`, data.at ? ` at ${new Date(data.at).toLocaleTimeString()}` : "", data.reason ? ` (${data.reason})` : ""));
        if (data.state !== status.state) {
          status = { ...status, state: data.state, state_reason: data.reason || null };
          renderHead();
        }
      } else if (kind === "progress") {
        seen.progress.push(data.tasks_done);
        renderProgress(data, data.state);
        refreshResult();
      } else if (kind === "end") {
        seen.ended = data.state;
        connection.textContent = `stream ended: the scan is ${data.state}`;
        request(path, { signal })
          .then((fresh) => {
            status = fresh;
            renderHead();
            renderProgress(fresh.progress || {}, fresh.state);
            return refreshResult(true);
          })
          .catch(fail);
      }
    },
    { signal, onConnection: (text) => { seen.connection = text; connection.textContent = text; } },
  ).catch(fail);
}

function fact(name, value) {
  return h("span", {}, `${name} `, h("b", {}, String(value)));
}

// what the maps show: the colour scale, the contours and this result's markers
function legendItems(result) {
  const item = (swatch, text) => h("span", {}, swatch, text);
  return [
    item(h("span", { class: "swatch", style: "background:#fde725" }), "best (0)"),
    item(h("span", { class: "swatch", style: "background:#440154" }), "worst"),
    item(h("span", { class: "swatch", style: "background:#d9d9d9" }), "not fitted"),
    item(h("span", { class: "swatch", style: "background:#606060" }), "failed fit"),
    item(h("span", { class: "swatch line", style: `background:${contourColour(50)};border:1px solid #999` }), "50%"),
    item(h("span", { class: "swatch line", style: `background:${contourColour(90)}` }), "90%"),
    item(h("span", { class: "swatch", style: "background:#fff" }), "★ best fit"),
    Object.keys((result && result.reference_fits) || {}).map((name, i) =>
      item(h("span", { class: "swatch", style: `background:${REFERENCE_STYLES[i % REFERENCE_STYLES.length].colour}` }), name),
    ),
    result && result.truth ? item(h("span", { class: "swatch", style: `background:${TRUTH_COLOUR}` }), "✕ truth") : null,
  ];
}

function renderNumbers(panel, result) {
  const best = result.best_fit;
  if (!best) return fill(panel, h("h2", {}, "Best fit and errors"), h("p", { class: "muted" }, "No fit yet."));
  const levels = Object.entries((result.regions && result.regions.levels) || {});
  const credible = (result.probability && result.probability.credible_areas_deg2) || {};
  const rows = levels.map(([name, r]) =>
    h(
      "tr",
      { dataset: { level: name } },
      h("td", {}, `${name}%`),
      h("td", { class: "num" }, fmt(r.level)),
      h("td", { class: "num area" }, fmt(r.area_deg2, 3)),
      h("td", { class: "num" }, fmt(credible[name], 3)),
      h("td", { class: "num" }, `+${fmt(r.ra_err_plus_deg)} / −${fmt(r.ra_err_minus_deg)}`),
      h("td", { class: "num" }, `+${fmt(r.dec_err_plus_deg)} / −${fmt(r.dec_err_minus_deg)}`),
      h("td", { class: "num" }, `${fmt(100 * r.resolved_fraction, 0)}%`),
    ),
  );
  const references = Object.entries(result.reference_fits || {});
  fill(panel,
    h("h2", {}, `Best fit and errors${result.complete ? "" : " (partial result)"}`),
    h(
      "div",
      { class: "facts", id: "best-fit" },
      fact("RA", `${fmt(best.ra_deg, 3)}°`),
      fact("Dec", `${fmt(best.dec_deg, 3)}°`),
      fact("zenith", `${fmt(best.zenith_deg, 3)}°`),
      fact("azimuth", `${fmt(best.azimuth_deg, 3)}°`),
      fact("−lnL", fmt(best.llh, 3)),
      fact("at nside", best.nside),
      fact("pixels", `${result.n_pixels} (${result.n_failed_pixels} failed)`),
      result.truth ? fact("truth offset", `${fmt(result.truth.offset_deg, 3)}°`) : null,
    ),
    h(
      "table",
      { id: "errors" },
      h("thead", {}, h("tr", {}, ["region", "2·ΔLLH level", "area deg²", "credible area deg²", "RA err deg", "Dec err deg", "resolved"].map((c, i) => h("th", { class: i ? "num" : "" }, c)))),
      h("tbody", {}, rows),
    ),
    references.length
      ? h(
          "table",
          { id: "reference-fits" },
          h("thead", {}, h("tr", {}, ["reference fit", "RA", "Dec", "from best fit", "2·ΔLLH there"].map((c, i) => h("th", { class: i ? "num" : "" }, c)))),
          h(
            "tbody",
            {},
            references.map(([name, f], i) =>
              h(
                "tr",
                {},
                h("td", {}, h("span", { class: "swatch", style: `background:${REFERENCE_STYLES[i % REFERENCE_STYLES.length].colour}` }), name),
                h("td", { class: "num" }, `${fmt(f.ra_deg, 3)}°`),
                h("td", { class: "num" }, `${fmt(f.dec_deg, 3)}°`),
                h("td", { class: "num" }, `${fmt(f.offset_deg, 3)}°`),
                h("td", { class: "num" }, fmt(f.map_2dllh)),
              ),
            ),
          ),
        )
      : null,
  );
}

// -- alerts ------------------------------------------------------------------------------------------
async function alertsView(signal) {
  state.view = "alerts";
  const body = h("tbody");
  const note = h("span", { class: "muted", id: "alert-note" });
  const file = h("input", { type: "file", id: "alert-file", accept: ".json,application/json" });
  const submitForm = state.identity.may_submit
    ? h(
        "form",
        {
          class: "toolbar",
          onsubmit: async (e) => {
            e.preventDefault();
            if (!file.files.length) return (note.textContent = "Choose an alert JSON file first.");
            let body;
            try {
              body = JSON.parse(await file.files[0].text());
            } catch (err) {
              return (note.textContent = `${file.files[0].name} is not JSON (${err.message}); choose an alert document.`);
            }
            try {
              const accepted = await request("/api/v1/alerts", { method: "POST", body });
              location.hash = `#/scans/${enc(accepted.scan_id)}`;
            } catch (err) {
              note.textContent = err.message;
            }
          },
        },
        h("label", {}, "Send an alert ({event, alert} or {i3live, alert}): ", file),
        h("button", { type: "submit", class: "primary" }, "Send"),
        note,
      )
    : null;
  render(
    h("div", { class: "panel" }, h("h1", {}, "Realtime alerts"), h("p", { class: "muted" }, "Scans of realtime alerts, highest priority first."), submitForm),
    h(
      "div",
      { class: "panel" },
      h("table", { id: "alerts" }, h("thead", {}, h("tr", {}, ["Alert", "Run:event", "Revision", "Stream", "State", "Best fit (RA, Dec)", "Age"].map((c) => h("th", {}, c)))), body),
    ),
  );
  async function refresh() {
    const page = await request("/api/v1/scans?sort=-priority&limit=200", { signal });
    const alerts = page.scans.filter((s) => s.alert);
    state.alerts = alerts.map((s) => s.scan_id);
    fill(body,
      ...alerts.map((s) =>
        h(
          "tr",
          { dataset: { scanId: s.scan_id } },
          h("td", {}, h("a", { href: `#/scans/${enc(s.scan_id)}` }, s.alert.event_name || s.scan_id.slice(0, 12))),
          h("td", {}, `${s.alert.run_id}:${s.alert.event_id}`),
          h("td", { class: "num" }, String(s.alert.revision ?? "")),
          h("td", {}, s.alert.stream || ""),
          h("td", {}, badge(s.state)),
          h("td", {}, s.best_fit ? `${fmt(s.best_fit.ra_deg)}°, ${fmt(s.best_fit.dec_deg)}°` : "–"),
          h("td", {}, age(s.created_at)),
        ),
      ),
    );
    if (!alerts.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No alert scans yet.")));
    later(signal, LIST_REFRESH_MS * 2, () => refresh().catch(fail));
  }
  await refresh();
}

// -- catalogs ----------------------------------------------------------------------------------------
async function catalogsView(signal) {
  state.view = "catalogs";
  const lookup = h("input", { id: "catalog-id", placeholder: "cat...", size: 28 });
  const body = h("tbody");
  render(
    h(
      "div",
      { class: "panel" },
      h("h1", {}, "Catalogs"),
      h(
        "form",
        { class: "toolbar", onsubmit: (e) => { e.preventDefault(); if (lookup.value.trim()) location.hash = `#/catalogs/${enc(lookup.value.trim())}`; } },
        h("label", {}, "Catalog id ", lookup),
        h("button", { type: "submit" }, "Open"),
      ),
    ),
    h("div", { class: "panel" }, h("h2", {}, "Recent catalogs"), h("table", { id: "catalogs" }, h("thead", {}, h("tr", {}, ["Catalog", "Name", "Owner", "Events", "Done", "Fits"].map((c) => h("th", {}, c)))), body)),
  );
  const page = await request("/api/v1/scans?sort=-created_at&limit=500", { signal });
  const ids = [...new Set(page.scans.map((s) => s.catalog_id).filter(Boolean))].slice(0, 20);
  const catalogs = await Promise.all(ids.map((id) => request(`/api/v1/catalogs/${enc(id)}`, { signal })));
  fill(body,
    ...catalogs.map((c) => {
      const ended = (c.states.completed || 0) + (c.states.failed || 0) + (c.states.aborted || 0);
      return h(
        "tr",
        {},
        h("td", {}, h("a", { href: `#/catalogs/${enc(c.catalog_id)}` }, c.catalog_id)),
        h("td", {}, c.name),
        h("td", {}, c.owner),
        h("td", { class: "num" }, String(c.n_events)),
        h("td", { class: "num" }, `${ended}/${c.n_events}`),
        h("td", { class: "num" }, `${c.tasks_done}/${c.tasks_sent}`),
      );
    }),
  );
  if (!catalogs.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No catalog scans among the latest 500 scans.")));
}

async function catalogView(catalogId, signal) {
  state.view = "catalog";
  const path = `/api/v1/catalogs/${enc(catalogId)}`;
  const summary = h("div", { class: "panel", id: "catalog" });
  const body = h("tbody");
  const boxes = FORMATS.map((f) => h("label", {}, h("input", { type: "checkbox", value: f, checked: f === "json" }), ` ${f}`));
  const note = h("span", { class: "muted" });
  render(
    summary,
    h(
      "div",
      { class: "panel" },
      h("h2", {}, "Download"),
      h("div", { class: "downloads" }, boxes),
      h(
        "div",
        { class: "toolbar" },
        h(
          "button",
          {
            type: "button",
            id: "catalog-download",
            onclick: async () => {
              const formats = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
              if (!formats.length) return (note.textContent = "Tick at least one format.");
              note.textContent = "preparing the zip...";
              try {
                note.textContent = `downloaded ${await download(`${path}/download?formats=${enc(formats.join(","))}`, `${catalogId}.zip`)}`;
              } catch (err) {
                note.textContent = err.message;
              }
            },
          },
          "Download zip (summary.csv and products)",
        ),
        note,
      ),
    ),
    h("div", { class: "panel" }, h("table", { id: "catalog-scans" }, h("thead", {}, h("tr", {}, ["#", "Scan", "Run:event", "State", "Fits done", "Best fit (RA, Dec)"].map((c) => h("th", {}, c)))), body)),
  );
  async function refresh() {
    const c = await request(path, { signal });
    state.catalog = { id: c.catalog_id, complete: c.complete, states: c.states };
    fill(summary,
      h("h1", {}, `Catalog ${c.name || c.catalog_id}`),
      h(
        "div",
        { class: "facts" },
        fact("id", c.catalog_id),
        fact("owner", c.owner),
        fact("events", c.n_events),
        fact("fits", `${c.tasks_done}/${c.tasks_sent}`),
        ...Object.entries(c.states).filter(([, n]) => n).map(([s, n]) => fact(s, n)),
      ),
    );
    fill(body,
      ...c.scans.map((s) =>
        h(
          "tr",
          {},
          h("td", { class: "num" }, String(s.index ?? "")),
          h("td", {}, h("a", { href: `#/scans/${enc(s.scan_id)}` }, s.scan_id.slice(0, 12))),
          h("td", {}, `${s.run_id}:${s.event_id}`),
          h("td", {}, badge(s.state)),
          h("td", { class: "num" }, String(s.tasks_done)),
          h("td", {}, s.best_fit ? `${fmt(s.best_fit.ra_deg)}°, ${fmt(s.best_fit.dec_deg)}°` : "–"),
        ),
      ),
    );
    if (!c.complete) later(signal, LIST_REFRESH_MS * 2, () => refresh().catch(fail));
  }
  await refresh();
}

$("#sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
