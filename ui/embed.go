// Package ui holds the web dashboard's built assets. The sources are in src/
// and index.html; `make ui` (npm ci && npm run build) bundles them into dist/,
// which is build output (gitignored except dist/.gitkeep).
package ui

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// FS is the built dashboard, rooted at dist/ (index.html at its top).
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid constant path; cannot happen
	}
	return sub
}

// Built reports whether the dashboard was bundled (dist/index.html exists).
// A binary built with plain `go build` before `make ui` serves the API only.
func Built() bool {
	_, err := fs.Stat(FS(), "index.html")
	return err == nil
}
