// Package consolebrowser holds the web console's browser tests (issue 18):
// a real stack (PostgreSQL, the Dashboard API on loopback, an organisation
// seeded through the real services) driven by Debian's Chromium through
// chromedp, every page checked by axe-core (vendored in testdata/axe) and
// photographed at a laptop and a tablet size. The package has no code
// outside its tests; docs/operations.md ("Web console") says how to run
// them and where the screenshots go.
package consolebrowser
