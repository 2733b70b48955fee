// Test recorder, loaded before the one tag: what the tag told the page (its events), what the browser refused under
// the page's Content-Security-Policy, and what was written to console.error.
"use strict";
window.records = { states: [], errors: [], violations: [], consoleErrors: [] };
document.addEventListener("tiledesk-auth:state", (e) => window.records.states.push(e.detail));
document.addEventListener("tiledesk-auth:error", (e) => window.records.errors.push(e.detail));
document.addEventListener("securitypolicyviolation", (e) =>
  window.records.violations.push({
    directive: e.effectiveDirective || e.violatedDirective,
    blocked: e.blockedURI,
    source: e.sourceFile,
    sample: e.sample,
  }),
);
(function () {
  const original = console.error.bind(console);
  console.error = (...args) => {
    window.records.consoleErrors.push(args.map(String).join(" "));
    original(...args);
  };
})();
