// Home: the scheduler heartbeat's age, ticking.
"use strict";
(() => {
  const spans = document.querySelectorAll(".heartbeat-age[data-since]");
  if (!spans.length) return;
  const tick = () => {
    for (const s of spans) {
      const age = (Date.now() - new Date(s.dataset.since).getTime()) / 1000;
      s.textContent = `(${window.airloop.formatDuration(Math.max(0, age))} ago)`;
    }
  };
  tick();
  setInterval(tick, 1000);
})();
