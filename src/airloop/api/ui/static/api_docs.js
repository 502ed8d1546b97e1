// Starts Swagger UI on /api/v1/docs (a file, not an inline script: the CSP forbids those).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({ url: root.dataset.openapiUrl, domNode: root, deepLinking: true });
});
