/* simfail dataset viewer: filters, the group/episode list, an episode's three views in sync
 * with its curves and events, and a group's episodes side by side. Acts only on #viewer-app. */
"use strict";
(function () {
  const root = document.getElementById("viewer-app");
  if (!root) return;
  const UI = SimfailUI;
  const el = UI.el;
  const D = UI.data();
  const byIndex = new Map(D.episodes.map((e) => [e.index, e]));
  const filters = {task: "", variant: "", policy: "", event: "", success: "", scoreMin: "", scoreMax: ""};
  let player = null;
  let selection = null; // {kind: "episode"|"group", id}
  let compareView = D.views[0];

  const eventTypes = (e) => [...new Set(e.events.map((ev) => ev.type))];
  const uniq = (xs) => [...new Set(xs)].sort();

  function matches(e) {
    if (filters.task && e.task !== filters.task) return false;
    if (filters.variant && e.variant !== filters.variant) return false;
    if (filters.policy && String(e.policy) !== filters.policy) return false;
    if (filters.event === "(none)" && e.events.length) return false;
    if (filters.event && filters.event !== "(none)" && !eventTypes(e).includes(filters.event)) return false;
    if (filters.success && String(e.success) !== filters.success) return false;
    if (filters.scoreMin !== "" && !(e.score >= Number(filters.scoreMin))) return false;
    if (filters.scoreMax !== "" && !(e.score <= Number(filters.scoreMax))) return false;
    return true;
  }

  // ------------------------------------------------------------------ sidebar
  function select(id, label, values, key) {
    const s = el("select", {id, onchange: () => { filters[key] = s.value; renderList(); }},
                 [el("option", {value: ""}, "all")].concat(values.map((v) => el("option", {value: v}, v))));
    return [el("label", {for: id}, label), s];
  }
  function number(id, label, key) {
    const i = el("input", {id, type: "number", step: "any", oninput: () => { filters[key] = i.value; renderList(); }});
    return [el("label", {for: id}, label), i];
  }
  const filterBox = el("div", {class: "filters"}, [].concat(
    select("f-task", "task", uniq(D.episodes.map((e) => e.task)), "task"),
    select("f-variant", "variant", uniq(D.episodes.map((e) => e.variant)), "variant"),
    D.has_policy ? select("f-policy", "policy", uniq(D.episodes.map((e) => String(e.policy))), "policy") : [],
    select("f-event", "event type", ["(none)"].concat(uniq(D.episodes.flatMap(eventTypes))), "event"),
    select("f-success", "success", ["true", "false"], "success"),
    number("f-score-min", "score ≥", "scoreMin"),
    number("f-score-max", "score ≤", "scoreMax"),
  ));
  const count = el("div", {class: "count", id: "count"});
  const list = el("div", {class: "groups", id: "group-list"});
  const sidebar = el("aside", {class: "sidebar panel"}, [filterBox, count, list]);
  const main = el("section", {class: "detail", id: "detail"});
  root.appendChild(el("div", {class: "viewer"}, [sidebar, main]));

  function renderList() {
    list.textContent = "";
    let nEp = 0, nGroups = 0;
    for (const g of D.groups) {
      const eps = g.episodes.map((i) => byIndex.get(i)).filter(matches);
      if (!eps.length) continue;
      nGroups += 1;
      nEp += eps.length;
      const head = el("div", {class: "group-head"}, [
        el("b", {}, `group ${g.id}`),
        el("button", {class: "compare-btn", "data-group": g.id, onclick: () => showGroup(g.id)}, "side by side"),
      ]);
      const rows = eps.map((e) => el("div", {
        class: "ep" + (selection && selection.kind === "episode" && selection.id === e.index ? " selected" : ""),
        "data-episode": e.index, onclick: () => showEpisode(e.index),
      }, [
        el("span", {}, [`#${e.index} ${e.variant}`, e.policy !== null ? ` (${e.policy})` : "",
                        ...eventTypes(e).map((t) => el("span", {class: "pill fail"}, t))]),
        el("span", {class: "score"}, `${e.success ? "✓" : "✗"} ${e.score.toFixed(1)}`),
      ]));
      list.appendChild(el("div", {class: "group", "data-group": g.id},
                          [head, el("div", {class: "group-task"}, `${g.task}: ${g.instruction}`), ...rows]));
    }
    count.textContent = `${nEp} of ${D.episodes.length} episodes in ${nGroups} groups`;
  }

  // ------------------------------------------------------------------ detail panes
  function curvesFor(e, onSeek, size) {
    const series = [];
    if (e.progress) series.push({name: "progress", values: e.progress, cls: "progress"});
    if (e.reward) series.push({name: "reward", values: e.reward, cls: "reward"});
    return UI.curves(Object.assign({n: e.length, series, events: e.events, failure: e.failure || null, onSeek}, size || {}));
  }
  const legend = () => UI.legend([["progress", "--progress", true], ["reward", "--reward", false],
                                  ["onset", "--warn", true], ["visible", "--bad", true], ["irreversible", "--bad", false]]);

  function badge(e) {
    return el("span", {class: "pill " + (e.success ? "success" : "fail")},
              `${e.success ? "success" : "failure"} · score ${e.score.toFixed(1)}`);
  }

  function mount(tracks, charts, ctl) {
    if (player) player.pause();
    player = new UI.Player(tracks, D.fps, (local, frame) => {
      for (const c of charts) c.setCursor(frame);
      ctl.update();
    });
    ctl.update();
  }

  function showEpisode(i) {
    const e = byIndex.get(i);
    if (!e) return;
    selection = {kind: "episode", id: i};
    history.replaceState(null, "", `#episode=${i}`);
    main.textContent = "";
    const tracks = D.views.map((v) => {
      const s = e.videos[v];
      return {view: v, video: UI.segmentVideo(s.src, s.from, s.to), from: s.from, to: s.to};
    });
    const ctl = UI.controls(() => player);
    const chart = curvesFor(e, (f) => player.seekFrame(f));
    // per-view visibility, where the dataset stores it (events' visible_frames: {view: frame | null})
    const seenIn = (view) => e.events.filter((ev) => ev.visible_frames && view in ev.visible_frames)
      .map((ev) => el("span", {class: "pill " + (ev.visible_frames[view] === null ? "" : "fail"), "data-seen": view},
                      `${ev.type} ${ev.visible_frames[view] === null ? "not seen" : "seen from " + ev.visible_frames[view]}`));
    main.appendChild(el("div", {class: "panel episode", id: "episode", "data-episode": i}, [
      el("h2", {}, [`episode ${e.index} · group ${e.group} · ${e.variant}`, e.policy !== null ? ` · policy ${e.policy}` : "", " ", badge(e)]),
      el("div", {class: "muted"}, `${e.task}: ${e.instruction} · ${e.length} frames at ${D.fps} fps`),
      el("div", {class: "views"}, tracks.map((t) => el("div", {class: "view", "data-view": t.view},
        [t.video, el("span", {class: "label"}, `${t.view} · ${t.video.dataset.from}–${t.video.dataset.to} s of ${e.videos[t.view].src.split("/").slice(-3).join("/")}`),
         el("span", {}, seenIn(t.view))]))),
      ctl.node, chart.svg, legend(), el("h3", {}, "events"), UI.eventList(e.events),
    ]));
    mount(tracks, [chart], ctl);
    renderList();
  }

  function showGroup(g) {
    const group = D.groups.find((x) => x.id === g);
    if (!group) return;
    selection = {kind: "group", id: g};
    history.replaceState(null, "", `#group=${g}`);
    main.textContent = "";
    const eps = group.episodes.map((i) => byIndex.get(i));
    eps.sort((a, b) => (b.variant === "expert") - (a.variant === "expert") || a.index - b.index);
    const viewSel = el("select", {id: "compare-view", onchange: () => { compareView = viewSel.value; showGroup(g); }},
                       D.views.map((v) => el("option", Object.assign({value: v}, v === compareView ? {selected: true} : {}), v)));
    const ctl = UI.controls(() => player);
    const tracks = [], charts = [];
    const columns = eps.map((e) => {
      const s = e.videos[compareView];
      const video = UI.segmentVideo(s.src, s.from, s.to);
      tracks.push({episode: e.index, video, from: s.from, to: s.to});
      const chart = curvesFor(e, (f) => player.seekFrame(f), {width: 300, height: 150});
      charts.push(chart);
      return el("div", {class: "column panel", "data-episode": e.index}, [
        el("h3", {}, [el("a", {href: `#episode=${e.index}`, onclick: (ev) => { ev.preventDefault(); showEpisode(e.index); }},
                         `#${e.index} ${e.variant}`), " ", badge(e)]),
        video, chart.svg, UI.eventList(e.events),
      ]);
    });
    main.appendChild(el("div", {class: "panel group-compare", id: "group-compare", "data-group": g}, [
      el("h2", {}, `group ${g}: the expert and its counterfactuals`),
      el("div", {class: "muted"}, [`${group.task}: ${group.instruction} · view `, viewSel]),
      ctl.node, legend(), el("div", {class: "compare"}, columns),
    ]));
    mount(tracks, charts, ctl);
    renderList();
  }

  document.addEventListener("keydown", (ev) => {
    if (!player || ["INPUT", "SELECT"].includes(document.activeElement.tagName)) return;
    if (ev.key === " ") { ev.preventDefault(); player.toggle(); }
    else if (ev.key === "ArrowRight") player.seekFrame(player.frame() + 1);
    else if (ev.key === "ArrowLeft") player.seekFrame(player.frame() - 1);
  });

  window.simfailViewer = {
    data: D, showEpisode, showGroup, filters,
    player: () => player,
    state: () => (player ? Object.assign({selection}, player.state()) : {selection}),
  };

  renderList();
  const m = /^#(episode|group)=(\d+)$/.exec(location.hash);
  if (m && m[1] === "group") showGroup(Number(m[2]));
  else if (m) showEpisode(Number(m[2]));
  else if (D.episodes.length) showEpisode(D.episodes[0].index);
  else main.appendChild(el("p", {class: "muted"}, "this dataset has no episodes"));
})();
