"""The LLM layer: one provider interface, the providers, the catalog and the local server."""
