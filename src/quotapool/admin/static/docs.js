// The admin API's docs: Swagger UI on the schema this server serves (no inline script: the
// page's Content-Security-Policy allows scripts from this origin only).
window.ui = SwaggerUIBundle({ url: "/quotapool/api/openapi.json", dom_id: "#swagger-ui" });
