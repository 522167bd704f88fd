// lh360 docs site: filter the table list, light up a lineage node's edges. No network, no libraries.
(function () {
  "use strict";
  var filter = document.getElementById("filter");
  if (filter) {
    filter.addEventListener("input", function () {
      var q = filter.value.trim().toLowerCase();
      document.querySelectorAll("table.list tbody tr").forEach(function (row) {
        row.style.display = !q || row.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
      });
    });
  }
  document.querySelectorAll("svg.lineage a.node").forEach(function (node) {
    var id = node.getAttribute("data-node");
    function light(on) {
      document.querySelectorAll("svg.lineage .edge").forEach(function (edge) {
        if (edge.getAttribute("data-from") === id || edge.getAttribute("data-to") === id) {
          edge.classList.toggle("hot", on);
        }
      });
    }
    node.addEventListener("mouseenter", function () { light(true); });
    node.addEventListener("mouseleave", function () { light(false); });
  });
})();
