// The live parts of a container's page: the API's own log stream and metrics, read with the
// session cookie. Everything else on the page works without this script (copy buttons: console.js).
(function () {
  "use strict";

  // ---- log: GET /v1/container/<id>/stdout, streamed into the page as it comes ------------------
  var section = document.getElementById("log-section");
  if (section) {
    var out = document.getElementById("log");
    var controller = null;
    var load = function () {
      if (controller) controller.abort();
      controller = new AbortController();
      out.textContent = "";
      delete out.dataset.ended;
      var params = new URLSearchParams({
        follow: document.getElementById("log-follow").checked ? "true" : "false",
        stderr: document.getElementById("log-stderr").checked ? "true" : "false",
      });
      var tail = document.getElementById("log-tail").value;
      if (tail !== "") params.set("tail", tail);
      var decoder = new TextDecoder();
      fetch(section.dataset.stdout + "?" + params, {credentials: "same-origin", signal: controller.signal})
        .then(function (response) {
          if (!response.ok) {
            return response.json().then(function (body) { out.textContent = "(" + body.error.message + ")"; });
          }
          var reader = response.body.getReader();
          var pump = function () {
            return reader.read().then(function (chunk) {
              if (chunk.done) { out.dataset.ended = "1"; return; }
              var atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
              out.textContent += decoder.decode(chunk.value, {stream: true});
              if (atEnd) out.scrollTop = out.scrollHeight;
              return pump();
            });
          };
          return pump();
        })
        .catch(function (error) { if (error.name !== "AbortError") out.textContent += "\n(" + error + ")"; });
    };
    ["log-follow", "log-stderr"].forEach(function (id) { document.getElementById(id).addEventListener("change", load); });
    document.getElementById("log-tail").addEventListener("change", load);
    document.getElementById("log-reload").addEventListener("click", load);
    load();
  }

  // ---- metrics: the last hour from GET /v1/container/<id>/metrics/history (what the reconciler
  // collected), then GET /v1/container/<id>/metrics every 2 s, drawn with uPlot ------------------
  var metrics = document.getElementById("metrics-section");
  if (metrics && window.uPlot) {
    var MiB = 1024 * 1024;
    var data = [[], [], []], io = [[], [], [], [], []];
    var width = function () { return Math.max(280, metrics.clientWidth - 32); };
    // x is Unix time in seconds (uPlot's `time: true`). For a single sample uPlot widens the range
    // to "a day" counted in milliseconds (1000 days in seconds) before asking `range`; so the range
    // comes from the samples themselves: all of them, and at least the last WINDOW seconds.
    var WINDOW = 60;
    var xScale = {time: true, range: function (u) {
      var xs = u.data[0];
      var last = xs.length ? xs[xs.length - 1] : Date.now() / 1000;
      return [Math.min(xs.length ? xs[0] : last, last - WINDOW), last];
    }};
    var cpuMem = new uPlot({
      width: width(), height: 200, title: "CPU and memory", scales: {x: xScale},
      series: [{}, {label: "CPU %", stroke: "#2563eb", width: 2}, {label: "Memory MiB", stroke: "#16a34a", width: 2, scale: "mib"}],
      axes: [{}, {label: "CPU %"}, {side: 1, scale: "mib", label: "MiB", grid: {show: false}}],
    }, data, document.getElementById("chart-cpu-mem"));
    var ioPlot = new uPlot({
      width: width(), height: 200, title: "Network and block I/O (bytes, cumulative)", scales: {x: xScale},
      series: [{}, {label: "net rx", stroke: "#9333ea"}, {label: "net tx", stroke: "#db2777"},
               {label: "block read", stroke: "#ea580c"}, {label: "block write", stroke: "#0891b2"}],
    }, io, document.getElementById("chart-io"));
    window.boatloadCharts = {cpuMem: cpuMem, io: ioPlot};  // what is drawn, for anyone to read (the tests do)
    var now = document.getElementById("metrics-now");
    var KEEP = 600;  // points kept: the history's hour (a point every BOATLOAD_FLEET_INTERVAL), then live ones
    var add = function (t, m) {
      data[0].push(t); data[1].push(m.cpu_percent); data[2].push(m.memory_bytes / MiB);
      io[0].push(t); io[1].push(m.network_rx_bytes); io[2].push(m.network_tx_bytes);
      io[3].push(m.block_read_bytes); io[4].push(m.block_write_bytes);
      [data, io].forEach(function (set) { set.forEach(function (s) { if (s.length > KEEP) s.shift(); }); });
    };
    var draw = function () {
      cpuMem.setData(data.map(function (s) { return s.slice(); }));  // x re-ranged by xScale.range
      ioPlot.setData(io.map(function (s) { return s.slice(); }));
      metrics.dataset.points = String(data[0].length);
    };
    var poll = function () {
      fetch(metrics.dataset.metrics, {credentials: "same-origin", headers: {Accept: "application/json"}})
        .then(function (response) { return response.json().then(function (body) { return [response.ok, body]; }); })
        .then(function (pair) {
          var m = pair[1];
          if (!pair[0]) { now.textContent = m.error.message; return; }
          add(Date.now() / 1000, Object.assign({}, m, {memory_bytes: m.memory_usage}));
          draw();
          now.textContent = "CPU " + (m.cpu_percent === null ? "…" : m.cpu_percent + " %") + " · memory " +
            (m.memory_usage / MiB).toFixed(1) + " MiB · pids " + m.pids;
        })
        .catch(function (error) { now.textContent = String(error); });
    };
    var live = function () { poll(); setInterval(poll, 2000); };
    // The history first (a deleted container has only it), then the live samples after it.
    fetch(metrics.dataset.history + "?since=1h", {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : {points: []}; })
      .then(function (body) {
        body.points.forEach(function (p) { add(p.t, p); });
        metrics.dataset.historyPoints = String(body.points.length);
        if (body.points.length) draw();
      })
      .catch(function () {})
      .then(function () { if (metrics.dataset.metrics) live(); });
    window.addEventListener("resize", function () {
      cpuMem.setSize({width: width(), height: 200}); ioPlot.setSize({width: width(), height: 200});
    });
  }
})();
