"""The usage dashboard: a page the gateway serves at /dashboard, drawn in the browser from the
usage API's own answers (so the page and /v1/usage never disagree). Static files inside the
package, no build step and nothing fetched from elsewhere; sign-in by the master key or a
read-only viewer key, kept in a signed HttpOnly, SameSite=Strict cookie."""

from gateway.dashboard.routes import Dashboard

__all__ = ["Dashboard"]
