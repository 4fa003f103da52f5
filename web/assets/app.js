// ltsweep's page script: swaps in fragments the server renders, and applies the sweep's
// live events (server-sent, relayed from the coordinator's WatchSweep stream) without a reload.
"use strict";

(function () {
  const refresh = async (element) => {
    if (!element) return;
    let response;
    try {
      response = await fetch(element.dataset.refresh, { credentials: "same-origin" });
    } catch (_) {
      // The coordinator is restarting: the next refresh or event brings the page up to date.
      return;
    }
    if (response.status === 401) {
      // The token changed or the cookie went: the page shows the login form.
      window.location.reload();
      return;
    }
    if (response.ok) element.innerHTML = await response.text();
  };

  document.querySelectorAll("[data-refresh]").forEach(refresh);
  // What has no event stream of its own (workers' last contact, the sweeps list) is polled.
  setInterval(() => {
    refresh(document.getElementById("workers"));
    refresh(document.getElementById("sweeps"));
  }, 5000);

  const FINAL = ["succeeded", "failed", "cancelled"];
  const main = document.getElementById("sweep");
  if (!main) return;
  const sweep = encodeURIComponent(main.dataset.sweep);
  const live = document.getElementById("live");
  const counts = document.getElementById("counts");
  const jobs = document.querySelector("#jobs tbody");
  const actionStatus = document.getElementById("action-status");

  // Several jobs often change at once: one report per burst.
  const later = (element, ms) => {
    let timer = null;
    return () => {
      if (timer !== null) return;
      timer = setTimeout(() => {
        timer = null;
        refresh(element);
      }, ms);
    };
  };
  const refreshReport = later(document.getElementById("report"), 400);
  const refreshWorkers = later(document.getElementById("workers"), 400);

  const setLive = (text, state) => {
    live.textContent = text;
    live.className = "live " + state;
  };

  let source = null;
  const listen = () => {
    if (source) source.close();
    source = new EventSource(`/api/sweeps/${sweep}/events`);
    source.onopen = () => setLive("live", "on");
    source.onerror = () => setLive("reconnecting…", "off");
    source.addEventListener("job", (message) => {
      const update = JSON.parse(message.data);
      const old = document.getElementById("job-" + update.job);
      const holder = document.createElement("tbody");
      holder.innerHTML = update.row;
      const row = holder.firstElementChild;
      // The states this page saw the job in, shown on hover.
      const seen = old ? (old.dataset.seen || old.dataset.state).split(" ") : [];
      if (seen[seen.length - 1] !== update.state) seen.push(update.state);
      row.dataset.seen = seen.join(" ");
      row.title = "seen here: " + seen.join(" → ");
      const before = old ? old.dataset.state : null;
      if (old) old.replaceWith(row);
      else jobs.appendChild(row);
      counts.innerHTML = update.counts;
      if (before !== update.state) {
        refreshWorkers();
        // The tables change when a job ends or is queued again.
        if (FINAL.includes(update.state) || FINAL.includes(before)) refreshReport();
      }
    });
    source.addEventListener("end", () => {
      source.close();
      source = null;
      setLive("sweep over", "over");
      refreshReport();
    });
  };
  listen();

  const act = async (path, question, summary) => {
    if (!window.confirm(question)) return;
    actionStatus.textContent = "…";
    const response = await fetch(`/api/sweeps/${sweep}/${path}`, {
      method: "POST",
      credentials: "same-origin",
    });
    if (response.ok) {
      actionStatus.textContent = summary(await response.json());
      // Retried jobs are pending again: a stream that ended with the sweep starts over.
      if (source === null) listen();
    } else {
      actionStatus.textContent = await response.text();
    }
  };
  document.getElementById("cancel").addEventListener("click", () =>
    act("cancel", "Cancel every pending and running job of this sweep?", (a) => `${a.cancelled} jobs cancelled`),
  );
  document.getElementById("retry-failed").addEventListener("click", () =>
    act("retry-failed", "Queue the failed jobs of this sweep again?", (a) => `${a.requeued} jobs queued again`),
  );
})();
