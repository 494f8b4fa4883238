// Swagger UI for Parlour's /openapi.json (served at /docs).
window.ui = SwaggerUIBundle({ url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true });
