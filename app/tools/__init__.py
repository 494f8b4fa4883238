"""Tools the assistant can call: built-ins, Google Calendar, Notion, MCP servers."""
