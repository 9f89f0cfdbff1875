// The /docs page: Swagger UI from this server (static/swagger-ui, vendored by scripts/vendor_swagger_ui.sh) on the
// server's OpenAPI description. A file of its own, not an inline script, so the page passes the server's CSP.
"use strict";

window.ui = SwaggerUIBundle({   // eslint-disable-line no-undef
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,   // no badge from an outside validator: the page asks only this server
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],   // eslint-disable-line no-undef
});
