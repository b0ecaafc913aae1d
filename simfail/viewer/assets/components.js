/* simfail page components, shared by the dataset viewer and the evaluate report.
 *
 * Frames are 0-based indices into an episode; frame k of an episode is presented at
 * `from + k / fps` seconds of its (concatenated LeRobot v3) mp4 file, and the episode's segment
 * is [from, to). No library, no network: everything the page needs is in this file.
 */
"use strict";
var SimfailUI = (function () {
  const SVG_NS = "http://www.w3.org/2000/svg";

  /** The page's embedded JSON payload (null when the page has none). */
  function data() {
    const node = document.getElementById("simfail-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  /** Create an HTML element: el("div", {class: "x", onclick: fn}, [children or text]). */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of [].concat(children || [])) {
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  const MARKERS = [
    ["onset_frame", "mk-onset", "onset"],
    ["visible_frame", "mk-visible", "visible"],
    ["irreversible_frame", "mk-irreversible", "irreversible"],
  ];

  /**
   * Curves of one episode as an inline SVG: one polyline per series with exactly one point per
   * frame, a shaded band where `failure` is true, a vertical marker per event at its onset,
   * visible and irreversible frames, and a cursor.
   *
   * opts: {n: frames, series: [{name, values, cls}], events: [...], failure: [bool] | null,
   *        width, height, onSeek(frame)}
   * returns {svg, setCursor(frame)}
   */
  function curves(opts) {
    const n = Math.max(opts.n, 1);
    const W = opts.width || 640, H = opts.height || 200;
    const pad = {l: 34, r: 14, t: 14, b: 22};
    const iw = W - pad.l - pad.r, ih = H - pad.t - pad.b;
    let lo = 0, hi = 1;
    for (const s of opts.series) for (const v of s.values) {
      if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    const x = (f) => pad.l + (n > 1 ? (f / (n - 1)) * iw : iw / 2);
    const y = (v) => pad.t + (1 - (v - lo) / (hi - lo || 1)) * ih;
    const svg = svgEl("svg", {class: "curves", viewBox: `0 0 ${W} ${H}`, width: W, height: H,
                              "data-frames": n, role: "img"});
    for (const v of [lo, (lo + hi) / 2, hi]) {
      svg.appendChild(svgEl("line", {class: "grid", x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v)}));
      const t = svgEl("text", {x: 2, y: y(v) + 3});
      t.textContent = v.toFixed(1);
      svg.appendChild(t);
    }
    svg.appendChild(svgEl("line", {class: "axis", x1: pad.l, x2: pad.l, y1: pad.t, y2: H - pad.b}));
    svg.appendChild(svgEl("line", {class: "axis", x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b}));
    const step = Math.max(1, Math.ceil(n / 8 / 10) * 10);
    for (let f = 0; f < n; f += step) {
      const t = svgEl("text", {x: x(f), y: H - 6, "text-anchor": "middle"});
      t.textContent = String(f);
      svg.appendChild(t);
    }
    if (opts.failure) {
      let start = -1;
      for (let f = 0; f <= n; f++) {
        const on = f < n && opts.failure[f];
        if (on && start < 0) start = f;
        if (!on && start >= 0) {
          svg.appendChild(svgEl("rect", {class: "failure-band", x: x(start), y: pad.t,
                                         width: Math.max(x(f - 1) - x(start), 1), height: ih}));
          start = -1;
        }
      }
    }
    for (const s of opts.series) {
      const pts = s.values.map((v, f) => `${x(f).toFixed(1)},${y(Number.isFinite(v) ? v : lo).toFixed(1)}`);
      const line = svgEl("polyline", {class: `series series-${s.cls || s.name}`, points: pts.join(" "),
                                      "data-series": s.name});
      const title = svgEl("title", {});
      title.textContent = s.name;
      line.appendChild(title);
      svg.appendChild(line);
    }
    (opts.events || []).forEach((ev, i) => {
      for (const [key, cls, label] of MARKERS) {
        const f = ev[key];
        if (f === null || f === undefined) continue;
        const xf = x(Math.min(f, n - 1));
        const line = svgEl("line", {class: `marker ${cls}`, x1: xf, x2: xf, y1: pad.t, y2: H - pad.b,
                                    "data-event": i, "data-kind": label, "data-frame": f});
        const title = svgEl("title", {});
        title.textContent = `${ev.type}: ${label} at frame ${f}`;
        line.appendChild(title);
        svg.appendChild(line);
      }
      const tag = svgEl("text", {x: x(Math.min(ev.visible_frame ?? ev.onset_frame ?? 0, n - 1)) + 3, y: pad.t + 10 + 11 * i});
      tag.textContent = ev.type;
      svg.appendChild(tag);
    });
    const cursor = svgEl("line", {class: "cursor", x1: x(0), x2: x(0), y1: pad.t - 4, y2: H - pad.b});
    svg.appendChild(cursor);
    if (opts.onSeek) {
      const seek = (e) => {
        const r = svg.getBoundingClientRect();
        const px = ((e.clientX - r.left) / r.width) * W;
        const f = Math.round(((px - pad.l) / iw) * (n - 1));
        opts.onSeek(Math.max(0, Math.min(n - 1, f)));
      };
      svg.addEventListener("mousedown", (e) => { seek(e); svg.onmousemove = (m) => { if (m.buttons) seek(m); }; });
    }
    return {
      svg,
      setCursor(frame) {
        const xf = x(Math.max(0, Math.min(n - 1, frame)));
        cursor.setAttribute("x1", xf);
        cursor.setAttribute("x2", xf);
        cursor.setAttribute("data-frame", frame);
      },
    };
  }

  /** Legend of the curves: [[label, css colour var, dashed?], ...]. */
  function legend(items) {
    return el("div", {class: "legend"}, items.map(([label, color, dash]) =>
      el("span", {}, [el("i", {style: `border-top: 2px ${dash ? "dashed" : "solid"} var(${color})`}), label])));
  }

  /** A muted, controls-less <video> showing one episode's segment of a concatenated mp4. */
  function segmentVideo(src, from, to) {
    const v = el("video", {muted: true, playsinline: true, preload: "auto",
                           src: `${src}#t=${from.toFixed(3)},${to.toFixed(3)}`,
                           "data-from": from, "data-to": to});
    v.muted = true;
    return v;
  }

  /**
   * Plays several episode segments in lockstep on one episode-local clock.
   *
   * tracks: [{video, from, to}] (seconds in each video's file); fps: frames per second.
   * The longest track is the master clock; the others follow it (re-seeked when they drift by
   * more than half a frame) and each stops on its own last frame. Playback stops at the end of
   * the master's segment: it never runs into the next episode of the concatenated file.
   */
  class Player {
    constructor(tracks, fps, onTick) {
      this.fps = fps;
      this.tracks = tracks.map((t) => Object.assign({}, t, {
        frames: Math.round((t.to - t.from) * fps), presented: null, presentedCount: 0}));
      this.master = this.tracks.reduce((a, b) => (b.frames > a.frames ? b : a), this.tracks[0]);
      this.frames = this.master ? this.master.frames : 0;
      this.onTick = onTick || (() => {});
      this.playing = false;
      this.local = 0; // seconds since the start of the episode
      this._raf = null;
      for (const t of this.tracks) {
        const v = t.video;
        v.muted = true;
        v.addEventListener("click", () => this.toggle());
        this._watchFrames(t);
        v.addEventListener("loadedmetadata", () => { if (!this.playing) this._place(t, this.local); });
      }
      this.seekFrame(0);
    }
    _watchFrames(t) {
      if (!t.video.requestVideoFrameCallback) return;
      const cb = (now, meta) => {
        t.presented = meta.mediaTime;
        t.presentedCount += 1;
        t.video.requestVideoFrameCallback(cb);
      };
      t.video.requestVideoFrameCallback(cb);
    }
    /** Seconds into track t's segment where its last frame shows (a quarter frame before `to`). */
    _end(t) { return Math.max(0, (t.frames - 0.25) / this.fps); }
    _place(t, local) {
      const target = t.from + Math.min(local, this._end(t));
      if (Math.abs(t.video.currentTime - target) > 1e-3) t.video.currentTime = target;
    }
    /** The frame under the clock (0-based, within the master's length). */
    frame() { return Math.max(0, Math.min(this.frames - 1, Math.floor(this.local * this.fps + 1e-6))); }
    seekFrame(k) {
      const f = Math.max(0, Math.min(this.frames - 1, k));
      this.pause();
      this.local = (f + 0.5) / this.fps; // the middle of frame f: robust to timestamp rounding
      for (const t of this.tracks) this._place(t, this.local);
      this.onTick(this.local, this.frame());
    }
    play() {
      if (!this.master) return;
      if (this.local >= this._end(this.master) - 1e-3) this.local = 0.5 / this.fps;
      this.playing = true;
      for (const t of this.tracks) {
        this._place(t, this.local);
        if (this.local < this._end(t)) t.video.play().catch(() => {});
      }
      const loop = () => {
        if (!this.playing) return;
        this._tick();
        if (this.playing) this._raf = requestAnimationFrame(loop);
      };
      this._raf = requestAnimationFrame(loop);
    }
    pause() {
      this.playing = false;
      if (this._raf) cancelAnimationFrame(this._raf);
      this._raf = null;
      for (const t of this.tracks) if (!t.video.paused) t.video.pause();
    }
    toggle() { if (this.playing) this.pause(); else this.play(); }
    _tick() {
      const m = this.master;
      this.local = Math.max(0, m.video.currentTime - m.from);
      const tol = 0.5 / this.fps;
      for (const t of this.tracks) {
        const end = this._end(t);
        if (this.local >= end) {
          if (!t.video.paused) t.video.pause();
          this._place(t, end);
        } else if (t !== m) {
          if (t.video.paused && !m.video.paused) t.video.play().catch(() => {});
          if (Math.abs(t.video.currentTime - t.from - this.local) > tol) t.video.currentTime = t.from + this.local;
        }
      }
      if (this.local >= this._end(m)) {
        this.local = this._end(m);
        this.pause();
      }
      this.onTick(this.local, this.frame());
    }
    /** Plain numbers for tests and debugging. */
    state() {
      return {
        playing: this.playing, local: this.local, frame: this.frame(), frames: this.frames, fps: this.fps,
        tracks: this.tracks.map((t) => ({
          src: t.video.currentSrc || t.video.src, from: t.from, to: t.to, frames: t.frames,
          currentTime: t.video.currentTime, paused: t.video.paused, readyState: t.video.readyState,
          videoWidth: t.video.videoWidth, presented: t.presented, presentedCount: t.presentedCount,
          error: t.video.error ? t.video.error.code : null,
        })),
      };
    }
  }

  /** Play/pause, frame step, a frame slider and a clock line for a Player. */
  function controls(getPlayer) {
    const slider = el("input", {type: "range", min: 0, max: 0, value: 0, step: 1, class: "frame-slider"});
    const clock = el("span", {class: "clock"});
    const playBtn = el("button", {class: "play", onclick: () => { getPlayer().toggle(); update(); }}, "play");
    const prev = el("button", {class: "prev", title: "previous frame", onclick: () => step(-1)}, "<");
    const next = el("button", {class: "next", title: "next frame", onclick: () => step(1)}, ">");
    slider.addEventListener("input", () => getPlayer().seekFrame(Number(slider.value)));
    function step(d) { const p = getPlayer(); p.seekFrame(p.frame() + d); }
    function update() {
      const p = getPlayer();
      if (!p) return;
      slider.max = Math.max(0, p.frames - 1);
      slider.value = p.frame();
      playBtn.textContent = p.playing ? "pause" : "play";
      clock.textContent = `frame ${p.frame()} / ${p.frames - 1}   t = ${(p.frame() / p.fps).toFixed(2)} s`;
    }
    return {node: el("div", {class: "controls"}, [playBtn, prev, next, slider, clock]), update};
  }

  /** The events of an episode with their frames and rationales, as a list. */
  function eventList(events) {
    if (!events || !events.length) return el("p", {class: "muted events-none"}, "no failure events");
    return el("ul", {class: "events"}, events.map((ev) => {
      const frames = [`onset ${ev.onset_frame}`, `visible ${ev.visible_frame}`, `irreversible ${ev.irreversible_frame}`];
      if (ev.visible_frames) {
        frames.push("per view: " + Object.entries(ev.visible_frames).map(([k, v]) => `${k} ${v === null ? "never" : v}`).join(", "));
      }
      if (ev.visible_in && !ev.visible_in.length) frames.push("no camera sees it");
      return el("li", {class: `event ${ev.category}`, "data-type": ev.type}, [
        el("b", {}, ev.type), ` (${ev.category}, severity ${Number(ev.severity).toFixed(2)}) `,
        el("span", {class: "frames"}, frames.join(" · ")),
        el("div", {class: "rationale"}, ev.rationale || ""),
      ]);
    }));
  }

  return {data, el, curves, legend, segmentVideo, Player, controls, eventList};
})();
