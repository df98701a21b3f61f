"""What every app may use and nothing app-specific (ARCHITECTURE.md): SSRF-safe fetching, shared helpers."""
