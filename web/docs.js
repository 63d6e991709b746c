// GET /docs: Swagger UI on this service's own OpenAPI document. Everything it loads comes from
// this service (no validator badge, no fonts or scripts from elsewhere), so it works offline.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
