/* simfail evaluate report: each sampled episode row gets the viewer's segment player and curves
 * (ground truth, progress and the model's rescaled reward, with the event markers and a cursor
 * that follows the video). Acts only on .report-episode rows. */
"use strict";
(function () {
  const rows = document.querySelectorAll(".report-episode");
  if (!rows.length) return;
  const UI = SimfailUI;
  const D = UI.data() || {episodes: []};
  const players = [];
  rows.forEach((row) => {
    const e = D.episodes[Number(row.dataset.episode)];
    if (!e) return;
    const series = [];
    if (e.progress) series.push({name: "progress", values: e.progress, cls: "progress"});
    if (e.reward) series.push({name: "ground-truth reward", values: e.reward, cls: "reward"});
    if (e.model) series.push({name: "model", values: e.model, cls: "model"});
    let player = null;
    const chart = UI.curves({n: e.length, series, events: e.events, width: 420, height: 170,
                             onSeek: (f) => player && player.seekFrame(f)});
    const slot = row.querySelector(".curve-slot");
    if (slot) {
      const png = slot.querySelector("a.png"); // the static PNG stays one click away
      if (png) { png.textContent = "static curve (PNG)"; png.remove(); }
      slot.textContent = "";
      slot.appendChild(chart.svg);
      if (png) slot.appendChild(png);
      slot.appendChild(UI.legend([["progress", "--progress", true], ["ground truth", "--reward", false],
                                  ["model", "--model", false], ["visible", "--bad", true]]));
    }
    const video = row.querySelector("video.segment");
    if (!video) return;
    const ctl = UI.controls(() => player);
    video.insertAdjacentElement("afterend", ctl.node);
    player = new UI.Player([{video, from: Number(video.dataset.from), to: Number(video.dataset.to)}], D.fps || 10,
                           (local, frame) => { chart.setCursor(frame); ctl.update(); });
    ctl.update();
    players.push(player);
  });
  window.simfailReport = {players};
})();
