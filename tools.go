//go:build tools

// Pins modules that the packages will import, so go mod tidy keeps them.

package tools

import (
	_ "github.com/aquasecurity/libbpfgo"
	_ "github.com/chromedp/chromedp"
	_ "github.com/dustin/go-humanize"
	_ "github.com/gdamore/tcell/v2"
	_ "github.com/gin-gonic/gin"
	_ "github.com/glebarez/sqlite"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/rivo/tview"
	_ "github.com/urfave/cli/v2"
	_ "gorm.io/gorm"
)
