// Progressive enhancement only: every page works without this file. On a meeting page
// opened without a chosen zone, show the times in the browser's own zone.
(function () {
  var picker = document.getElementById("zone-picker");
  if (!picker) return;
  var params = new URLSearchParams(window.location.search);
  if (params.has("tz")) return;
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  var list = document.getElementById("tz-list");
  if (!zone || !list) return;
  var known = zone === "UTC" || Array.prototype.some.call(list.options, function (o) { return o.value === zone; });
  if (!known) return;
  params.set("tz", zone);
  window.location.replace(window.location.pathname + "?" + params.toString());
})();
