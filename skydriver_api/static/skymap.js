// Drawing a scan's multi-order HEALPix map: a full-sky Mollweide and an interactive gnomonic zoom, with
// the regions' contours (the GeoJSON product) and markers. Colours follow the PNG product
// (skyscan/skymap/exports/plot.py): viridis reversed, 50% contour white, 90% red.

import { ang2pixRing, pixelSizeDeg } from "./healpix.js";

const DEG = Math.PI / 180;
const SQRT2 = Math.SQRT2;
export const CONTOUR_COLOURS = { 50: "#ffffff", 90: "#ff0000" };
const OTHER_CONTOUR_COLOURS = ["#ffa500", "#ff00ff"];
export const REFERENCE_STYLES = [
  { shape: "circle", colour: "#ff7f0e" },
  { shape: "square", colour: "#e377c2" },
  { shape: "diamond", colour: "#bcbd22" },
  { shape: "triangle", colour: "#17becf" },
  { shape: "triangle-down", colour: "#8c564b" },
];
export const TRUTH_COLOUR = "#00ffff";
const UNFITTED = [217, 217, 217];
const FAILED = [96, 96, 96];
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"].map(
  (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)),
);

// viridis reversed: 0 (the best fit) is yellow, 1 purple
export function viridisReversed(t) {
  const x = (1 - Math.min(Math.max(t, 0), 1)) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  return [0, 1, 2].map((k) => Math.round(VIRIDIS[i][k] + f * (VIRIDIS[i + 1][k] - VIRIDIS[i][k])));
}

export function contourColour(level) {
  return CONTOUR_COLOURS[level] || OTHER_CONTOUR_COLOURS[Math.abs(Math.round(level)) % 2];
}

// 2*dLLH of every fitted pixel, looked up at the finest nside that has a fit for a direction.
export class PixelIndex {
  constructor(result) {
    this.byNside = new Map();
    this.bestLlh = result.best_fit ? result.best_fit.llh : null;
    this.maxTs = 0;
    this.count = 0;
    for (const row of result.pixels || []) {
      let pixels = this.byNside.get(row.nside);
      if (!pixels) this.byNside.set(row.nside, (pixels = new Map()));
      const failed = row.status === "failed" || row.llh === null || this.bestLlh === null;
      const ts = failed ? NaN : 2 * (row.llh - this.bestLlh);
      pixels.set(row.pixel, ts);
      this.count += 1;
      if (ts > this.maxTs) this.maxTs = ts;
    }
    this.nsides = [...this.byNside.keys()].sort((a, b) => b - a);
    this.finestNside = this.nsides[0] || 8;
  }

  // NaN for a failed fit, undefined where nothing was fitted (yet)
  tsAt(z, phi) {
    for (const nside of this.nsides) {
      const ts = this.byNside.get(nside).get(ang2pixRing(nside, z, phi));
      if (ts !== undefined) return ts;
    }
    return undefined;
  }
}

function remainder(a, m) {
  return a - m * Math.round(a / m);
}

export function angularDistanceDeg(ra1, dec1, ra2, dec2) {
  const c =
    Math.sin(dec1 * DEG) * Math.sin(dec2 * DEG) + Math.cos(dec1 * DEG) * Math.cos(dec2 * DEG) * Math.cos((ra1 - ra2) * DEG);
  return Math.acos(Math.min(1, Math.max(-1, c))) / DEG;
}

// Every ring of the GeoJSON regions as {level, points: [[ra, dec], ...], cut: [bool per edge]}; an edge
// along the antimeridian is where RFC 7946 cut a polygon, not part of the contour.
export function contourRings(geojson) {
  const rings = [];
  for (const feature of (geojson && geojson.features) || []) {
    const level = Math.round(feature.properties.credible_level);
    const geometry = feature.geometry || {};
    const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
    for (const polygon of polygons) {
      for (const ring of polygon) {
        const cut = ring.slice(1).map((p, i) => Math.abs(p[0]) === 180 && Math.abs(ring[i][0]) === 180);
        rings.push({ level, points: ring, cut });
      }
    }
  }
  return rings;
}

export function drawMarker(ctx, shape, x, y, size, fill, stroke = "#000") {
  ctx.save();
  ctx.beginPath();
  if (shape === "star") {
    for (let k = 0; k < 10; k++) {
      const r = k % 2 ? size * 0.45 : size;
      const a = -Math.PI / 2 + (k * Math.PI) / 5;
      ctx.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
    }
    ctx.closePath();
  } else if (shape === "square") {
    ctx.rect(x - size * 0.7, y - size * 0.7, size * 1.4, size * 1.4);
  } else if (shape === "diamond") {
    ctx.moveTo(x, y - size);
    ctx.lineTo(x + size, y);
    ctx.lineTo(x, y + size);
    ctx.lineTo(x - size, y);
    ctx.closePath();
  } else if (shape === "triangle" || shape === "triangle-down") {
    const s = shape === "triangle" ? 1 : -1;
    ctx.moveTo(x, y - s * size);
    ctx.lineTo(x + size, y + s * size * 0.8);
    ctx.lineTo(x - size, y + s * size * 0.8);
    ctx.closePath();
  } else if (shape === "cross") {
    ctx.moveTo(x - size, y - size);
    ctx.lineTo(x + size, y + size);
    ctx.moveTo(x + size, y - size);
    ctx.lineTo(x - size, y + size);
    ctx.strokeStyle = fill;
    ctx.lineWidth = 3;
    ctx.stroke();
    ctx.restore();
    return;
  } else {
    ctx.arc(x, y, size * 0.8, 0, 2 * Math.PI);
  }
  ctx.fillStyle = fill;
  ctx.fill();
  ctx.strokeStyle = stroke;
  ctx.lineWidth = 1.2;
  ctx.stroke();
  ctx.restore();
}

// The directions to mark: best fit, IceCube's reference fits and, for simulations, the truth.
export function markersOf(result) {
  const markers = [];
  const best = result.best_fit;
  if (best) markers.push({ name: "best fit", ra: best.ra_deg, dec: best.dec_deg, shape: "star", colour: "#ffffff", size: 9 });
  Object.entries(result.reference_fits || {}).forEach(([name, fit], i) => {
    const style = REFERENCE_STYLES[i % REFERENCE_STYLES.length];
    markers.push({ name, ra: fit.ra_deg, dec: fit.dec_deg, shape: style.shape, colour: style.colour, size: 6 });
  });
  if (result.truth) markers.push({ name: "truth", ra: result.truth.ra_deg, dec: result.truth.dec_deg, shape: "cross", colour: TRUTH_COLOUR, size: 6 });
  return markers;
}

// light text with a dark halo: readable on every colour of the map
function label(ctx, text, x, y) {
  ctx.font = "11px sans-serif";
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(0, 0, 0, 0.65)";
  ctx.strokeText(text, x, y);
  ctx.fillStyle = "#fff";
  ctx.fillText(text, x, y);
}

class MapView {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
  }

  // the colour of every canvas pixel from its direction; returns how many show a fitted value
  paint(index, colourOf, directions) {
    const { width, height } = this.canvas;
    const image = this.ctx.createImageData(width, height);
    const { z, phi, inside } = directions;
    let fitted = 0;
    for (let i = 0; i < width * height; i++) {
      if (!inside[i]) continue;
      const ts = index ? index.tsAt(z[i], phi[i]) : undefined;
      const rgb = ts === undefined ? UNFITTED : Number.isNaN(ts) ? FAILED : colourOf(ts);
      if (ts !== undefined && !Number.isNaN(ts)) fitted += 1;
      image.data.set(rgb, 4 * i);
      image.data[4 * i + 3] = 255;
    }
    this.ctx.putImageData(image, 0, 0);
    return fitted;
  }

  // polylines of sky points, broken where a point is not visible or a jump shows a wrap
  strokeSky(points, style, { skip = () => false, maxJump = Infinity } = {}) {
    const ctx = this.ctx;
    let segments = 0;
    let previous = null;
    ctx.save();
    ctx.strokeStyle = style.colour;
    ctx.lineWidth = style.width || 1.5;
    ctx.globalAlpha = style.alpha || 1;
    ctx.beginPath();
    points.forEach(([ra, dec], i) => {
      const p = this.project(ra, dec);
      if (p && previous && !skip(i) && Math.hypot(p.x - previous.x, p.y - previous.y) < maxJump) {
        ctx.moveTo(previous.x, previous.y);
        ctx.lineTo(p.x, p.y);
        segments += 1;
      }
      previous = p;
    });
    ctx.stroke();
    ctx.restore();
    return segments;
  }

  drawOverlay(result, rings, maxJump) {
    const contours = {};
    for (const ring of rings) {
      const n = this.strokeSky(ring.points, { colour: contourColour(ring.level), width: 1.8 }, { skip: (i) => ring.cut[i - 1], maxJump });
      contours[ring.level] = (contours[ring.level] || 0) + n;
    }
    const markers = markersOf(result).map((m) => {
      const p = this.project(m.ra, m.dec);
      const visible = !!p && p.x >= 0 && p.y >= 0 && p.x < this.canvas.width && p.y < this.canvas.height;
      if (visible) drawMarker(this.ctx, m.shape, p.x, p.y, m.size, m.colour);
      return { name: m.name, x: p ? p.x : null, y: p ? p.y : null, visible };
    });
    return { contours, markers };
  }
}

// The whole sky in Mollweide's projection, RA growing to the left with 180 deg in the middle.
export class FullSkyView extends MapView {
  constructor(canvas) {
    super(canvas);
    const { width, height } = canvas;
    const n = width * height;
    this.directions = { z: new Float64Array(n), phi: new Float64Array(n), inside: new Uint8Array(n) };
    for (let j = 0; j < height; j++) {
      for (let i = 0; i < width; i++) {
        const x = ((i + 0.5) / width) * 4 * SQRT2 - 2 * SQRT2;
        const y = SQRT2 - ((j + 0.5) / height) * 2 * SQRT2;
        if ((x * x) / 8 + (y * y) / 2 > 1) continue;
        const theta = Math.asin(y / SQRT2);
        const k = j * width + i;
        this.directions.z[k] = Math.min(1, Math.max(-1, (2 * theta + Math.sin(2 * theta)) / Math.PI));
        const lon = (Math.PI * x) / (2 * SQRT2 * Math.cos(theta));
        this.directions.phi[k] = (((Math.PI - lon) % (2 * Math.PI)) + 2 * Math.PI) % (2 * Math.PI);
        this.directions.inside[k] = 1;
      }
    }
  }

  project(raDeg, decDeg) {
    const lon = remainder(Math.PI - raDeg * DEG, 2 * Math.PI);
    const dec = decDeg * DEG;
    let theta = dec;
    if (Math.abs(dec) < Math.PI / 2 - 1e-9) {
      const target = Math.PI * Math.sin(dec);
      for (let k = 0; k < 30; k++) {
        const step = (2 * theta + Math.sin(2 * theta) - target) / (2 + 2 * Math.cos(2 * theta));
        theta -= step;
        if (Math.abs(step) < 1e-10) break;
      }
    }
    const x = ((2 * SQRT2) / Math.PI) * lon * Math.cos(theta);
    const y = SQRT2 * Math.sin(theta);
    const { width, height } = this.canvas;
    return { x: ((x + 2 * SQRT2) / (4 * SQRT2)) * width, y: ((SQRT2 - y) / (2 * SQRT2)) * height };
  }

  draw(result, index, geojson) {
    const top = Math.max(index ? index.maxTs : 1, 1);
    const fitted = this.paint(index, (ts) => viridisReversed(Math.pow(Math.max(ts, 0) / top, 0.3)), this.directions);
    this.graticule();
    const overlay = this.drawOverlay(result, contourRings(geojson), this.canvas.width / 4);
    return { fitted, ...overlay };
  }

  graticule() {
    const style = { colour: "#ffffff", width: 0.6, alpha: 0.45 };
    for (let dec = -60; dec <= 60; dec += 30) {
      this.strokeSky(Array.from({ length: 181 }, (_, i) => [i * 2, dec]), style, { maxJump: this.canvas.width / 4 });
    }
    for (let ra = 0; ra < 360; ra += 60) {
      this.strokeSky(Array.from({ length: 91 }, (_, i) => [ra + 1e-6, -90 + i * 2]), style);
    }
    const ctx = this.ctx;
    ctx.save();
    ctx.textAlign = "center";
    for (let ra = 0; ra < 360; ra += 60) {
      const p = this.project(ra + 1e-6, 0);
      label(ctx, `${ra}°`, p.x, p.y - 4);
    }
    ctx.restore();
  }
}

// A gnomonic (tangent-plane) view about a centre, RA growing to the left; wheel zooms, drag pans.
export class ZoomView extends MapView {
  constructor(canvas, { onMove } = {}) {
    super(canvas);
    this.centre = null; // [ra, dec] in degrees
    this.halfDeg = null; // half the canvas width, in degrees on the sky
    this.home = null;
    this.onMove = onMove;
    this.redraw = null;
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoomBy(e.deltaY > 0 ? 1.25 : 0.8);
    }, { passive: false });
    canvas.addEventListener("pointerdown", (e) => {
      if (!this.centre) return;
      canvas.setPointerCapture(e.pointerId);
      this.drag = { x: e.offsetX, y: e.offsetY, centre: this.centre };
    });
    canvas.addEventListener("pointerup", () => (this.drag = null));
    canvas.addEventListener("pointermove", (e) => {
      if (!this.centre) return;
      const scale = this.canvas.width / canvas.clientWidth;
      if (this.drag) {
        const dx = (e.offsetX - this.drag.x) * scale;
        const dy = (e.offsetY - this.drag.y) * scale;
        const { width, height } = this.canvas;
        const moved = this.unproject(width / 2 - dx, height / 2 - dy, this.drag.centre);
        this.centre = [moved.ra, moved.dec];
        this.schedule();
      }
      if (this.onMove) this.onMove(this.unproject(e.offsetX * scale, e.offsetY * scale, this.centre));
    });
  }

  reset(centre, halfDeg) {
    this.home = { centre, halfDeg };
    this.centre = centre;
    this.halfDeg = halfDeg;
  }

  goHome() {
    if (!this.home) return;
    this.centre = this.home.centre;
    this.halfDeg = this.home.halfDeg;
    this.schedule();
  }

  zoomBy(factor) {
    if (!this.centre) return;
    this.halfDeg = Math.min(Math.max(this.halfDeg * factor, 0.01), 60);
    this.schedule();
  }

  schedule() {
    if (this.pending || !this.redraw) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = null;
      this.redraw();
    });
  }

  planeScale() {
    return Math.tan(this.halfDeg * DEG) / (this.canvas.width / 2);
  }

  unproject(px, py, centre = this.centre) {
    const { width, height } = this.canvas;
    const s = this.planeScale();
    const x = -(px - width / 2) * s; // east, to the left
    const y = (height / 2 - py) * s;
    const [ra0, dec0] = [centre[0] * DEG, centre[1] * DEG];
    const rho = Math.hypot(x, y);
    if (rho === 0) return { ra: centre[0], dec: centre[1] };
    const c = Math.atan(rho);
    const dec = Math.asin(Math.cos(c) * Math.sin(dec0) + (y * Math.sin(c) * Math.cos(dec0)) / rho);
    const ra = ra0 + Math.atan2(x * Math.sin(c), rho * Math.cos(dec0) * Math.cos(c) - y * Math.sin(dec0) * Math.sin(c));
    return { ra: ((ra / DEG) % 360 + 360) % 360, dec: dec / DEG };
  }

  project(raDeg, decDeg) {
    const [ra0, dec0] = [this.centre[0] * DEG, this.centre[1] * DEG];
    const [ra, dec] = [raDeg * DEG, decDeg * DEG];
    const cosc = Math.sin(dec0) * Math.sin(dec) + Math.cos(dec0) * Math.cos(dec) * Math.cos(ra - ra0);
    if (cosc < 0.1) return null; // beyond ~84 deg the tangent plane has no useful image
    const x = (Math.cos(dec) * Math.sin(ra - ra0)) / cosc;
    const y = (Math.cos(dec0) * Math.sin(dec) - Math.sin(dec0) * Math.cos(dec) * Math.cos(ra - ra0)) / cosc;
    const s = this.planeScale();
    return { x: this.canvas.width / 2 - x / s, y: this.canvas.height / 2 - y / s };
  }

  directions() {
    const { width, height } = this.canvas;
    const n = width * height;
    const out = { z: new Float64Array(n), phi: new Float64Array(n), inside: new Uint8Array(n).fill(1) };
    for (let j = 0; j < height; j++) {
      for (let i = 0; i < width; i++) {
        const d = this.unproject(i + 0.5, j + 0.5);
        const k = j * width + i;
        out.z[k] = Math.sin(d.dec * DEG);
        out.phi[k] = d.ra * DEG;
      }
    }
    return out;
  }

  // 2*dLLH up to `top` (three times the widest region's level, at least 10), as the PNG zoom
  draw(result, index, geojson, top) {
    if (!this.centre) return { fitted: 0, contours: {}, markers: [] };
    const fitted = this.paint(index, (ts) => viridisReversed(Math.max(ts, 0) / top), this.directions());
    this.graticule();
    const overlay = this.drawOverlay(result, contourRings(geojson), Infinity);
    return { fitted, ...overlay };
  }

  graticule() {
    const half = this.halfDeg;
    const step = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30].find((s) => (2 * half) / s <= 6) || 30;
    const [ra0, dec0] = this.centre;
    const style = { colour: "#ffffff", width: 0.6, alpha: 0.55 };
    const ctx = this.ctx;
    const span = Math.min(3 * half / Math.max(Math.cos(Math.min(Math.abs(dec0) + half, 89) * DEG), 0.02), 180);
    const decs = [];
    for (let d = Math.ceil((dec0 - 1.5 * half) / step) * step; d <= Math.min(dec0 + 1.5 * half, 90); d += step) decs.push(d);
    const ras = [];
    for (let r = Math.ceil((ra0 - span) / step) * step; r <= ra0 + span; r += step) ras.push(r);
    ctx.save();
    for (const d of decs) {
      if (d < -90) continue;
      const points = Array.from({ length: 121 }, (_, i) => [ra0 - span + (i * 2 * span) / 120, d]);
      this.strokeSky(points, style, { maxJump: this.canvas.width });
      const p = this.project(ra0, d);
      if (p && p.y > 12 && p.y < this.canvas.height - 18) label(ctx, `${d.toFixed(step < 1 ? 2 : 0)}°`, 4, p.y - 2);
    }
    for (const r of ras) {
      const points = Array.from({ length: 121 }, (_, i) => [r, Math.max(-90, Math.min(90, dec0 - 1.5 * half + (i * 3 * half) / 120))]);
      this.strokeSky(points, style, { maxJump: this.canvas.width });
      const p = this.project(r, dec0);
      if (p && p.x > 30 && p.x < this.canvas.width - 30) {
        label(ctx, `${(((r % 360) + 360) % 360).toFixed(step < 1 ? 2 : 0)}°`, p.x + 2, this.canvas.height - 4);
      }
    }
    ctx.restore();
  }
}

// Half-width of the first zoom: the widest contour's farthest point from the best fit, with a margin
// (as the PNG product), else the 90% region's errors, else a few of the finest pixels.
export function zoomHalfWidthDeg(result, geojson, finestNside) {
  const best = result.best_fit;
  let radius = 0;
  for (const ring of contourRings(geojson)) {
    for (const [ra, dec] of ring.points) radius = Math.max(radius, angularDistanceDeg(best.ra_deg, best.dec_deg, ra, dec));
  }
  if (radius === 0) {
    const levels = Object.values((result.regions && result.regions.levels) || {});
    for (const r of levels) {
      radius = Math.max(radius, r.dec_err_plus_deg || 0, r.dec_err_minus_deg || 0, (r.ra_err_plus_deg || 0) * Math.cos(best.dec_deg * DEG));
    }
  }
  if (radius === 0) radius = 3 * pixelSizeDeg(finestNside);
  return Math.min(1.15 * radius + 0.02, 60);
}
