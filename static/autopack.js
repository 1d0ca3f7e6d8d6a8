// Live pages: a websocket per page receives server-rendered HTML fragments; if the socket
// keeps failing, the same fragments are polled. Fragments replace elements by id; log
// lines are appended. The page remembers the last event id so a reconnect catches up, and
// asks for anything newer now and then even while connected, so a lost message costs at
// most a few seconds.
(function () {
  const root = document.querySelector("[data-live]");
  if (!root) return;
  const status = document.getElementById("live-status");
  let lastId = parseInt(root.dataset.lastEvent || "0", 10);
  let failures = 0;
  let polling = null;

  function setStatus(on, text) {
    if (!status) return;
    status.className = "live " + (on ? "on" : "off");
    status.textContent = text;
  }

  function apply(data) {
    if (data.last_id !== undefined && data.last_id < lastId) return;
    if (!data.html && !data.log) return;
    for (const [id, html] of Object.entries(data.html || {})) {
      const target = document.getElementById(id);
      if (target) target.innerHTML = html;
    }
    if (data.log) {
      const log = document.getElementById("event-log");
      if (log) {
        log.insertAdjacentHTML("beforeend", data.log);
        log.scrollTop = log.scrollHeight;
      }
    }
    if (data.last_id !== undefined) {
      lastId = data.last_id;
      root.dataset.lastEvent = String(lastId);
    }
  }

  function poll() {
    fetch(root.dataset.poll + "?after=" + lastId, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((data) => { apply(data); if (polling) setStatus(true, "live (polling)"); })
      .catch(() => { if (polling) setStatus(false, "offline, retrying"); });
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + root.dataset.socket + "?after=" + lastId);
    socket.onopen = () => {
      failures = 0;
      setStatus(true, "live");
      if (polling) { clearInterval(polling); polling = null; }
    };
    socket.onmessage = (message) => apply(JSON.parse(message.data));
    socket.onclose = () => {
      failures += 1;
      setStatus(false, "reconnecting");
      if (failures >= 3 && !polling) polling = setInterval(poll, 3000);
      setTimeout(connect, Math.min(10000, 500 * 2 ** failures));
    };
  }

  connect();
  setInterval(() => { if (!polling && root.dataset.poll) poll(); }, 8000);
})();
