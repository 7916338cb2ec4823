package report

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/bwtracker/bwtracker/internal/store"
)

// The PNG export (`report --png FILE`), vnstati-like: a title, a bar chart
// of sent and received per period, and the period table under it. Drawn
// with gonum.org/v1/plot (pure Go, maintained by the gonum project, PNG
// through its vgimg backend, fonts embedded), so the static binary needs no
// system fonts or C libraries.

// PNG geometry in pixels (1 point = 1 pixel: the canvas is 72 dpi).
const (
	PNGWidth      = 760
	pngTitleH     = 34
	pngChartH     = 300
	pngLineH      = 15
	pngPad        = 12
	pngMaxTable   = 40 // table rows drawn; the chart shows every period
	pngTableFontS = 10.5
)

var (
	pngSent     = color.RGBA{R: 0xe0, G: 0x8a, B: 0x1e, A: 0xff} // orange, like vnstati's tx
	pngReceived = color.RGBA{R: 0x3a, G: 0x8f, B: 0x3a, A: 0xff} // green, rx
)

// PNGHeight is the height of the image WritePNG draws for a table of rows
// periods (after SelectPeriods): the chart, then one line per row plus the
// header and the footer.
func PNGHeight(rows int) int {
	rows = min(rows, pngMaxTable)
	return pngTitleH + pngChartH + pngPad + pngLineH*(rows+2) + pngPad
}

// WritePNG draws ps (all periods of the window, chronological, empty ones
// included: the chart shows gaps) as a PNG. The table lists the periods
// with traffic (SelectPeriods, TopDays) like the text table, in opt.Units.
func WritePNG(w io.Writer, ps []store.Period, opt PeriodOptions, title string) error {
	table := SelectPeriods(ps, opt.TopDays)
	height := PNGHeight(len(table))
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(PNGWidth), vg.Length(height)), vgimg.UseDPI(72), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(c)
	H := vg.Length(height)

	mono := font.Font{Typeface: "Liberation", Variant: "Mono"}
	sans := font.Font{Typeface: "Liberation", Variant: "Sans"}
	txt := func(f font.Font, size float64, clr color.Color) draw.TextStyle {
		return draw.TextStyle{Color: clr, Font: font.From(f, vg.Length(size)), Handler: plot.DefaultTextHandler, YAlign: draw.YTop}
	}
	dc.FillText(txt(sans, 15, color.Black), vg.Point{X: pngPad, Y: H - 10}, title)

	// The chart.
	p := plot.New()
	p.BackgroundColor = color.Transparent
	u := opt.Units
	sent := make(plotter.Values, len(ps))
	recv := make(plotter.Values, len(ps))
	labels := make([]string, len(ps))
	every := max(1, int(math.Ceil(float64(len(ps))/16)))
	for i, pr := range ps {
		sent[i] = float64(pr.TxBytes)
		recv[i] = float64(pr.RxBytes)
		if i%every == 0 {
			labels[i] = shortLabel(opt.Kind, pr.Start)
		}
	}
	chartW := vg.Length(PNGWidth - 2*pngPad - 90)
	barW := max(vg.Length(1), chartW/vg.Length(max(1, len(ps)))/2.6)
	bs, err := plotter.NewBarChart(sent, barW)
	if err != nil {
		return fmt.Errorf("png: %w", err)
	}
	bs.Color, bs.LineStyle.Width, bs.Offset = pngSent, 0, -barW/2
	br, err := plotter.NewBarChart(recv, barW)
	if err != nil {
		return fmt.Errorf("png: %w", err)
	}
	br.Color, br.LineStyle.Width, br.Offset = pngReceived, 0, barW/2
	p.Add(bs, br, plotter.NewGrid())
	p.Legend.Add("sent", bs)
	p.Legend.Add("received", br)
	p.Legend.Top = true
	p.Legend.TextStyle.Font = font.From(sans, 10)
	p.NominalX(labels...)
	p.X.Tick.Label.Font = font.From(sans, 9)
	p.Y.Tick.Label.Font = font.From(sans, 9)
	p.Y.Min = 0
	var peak float64
	for i := range sent {
		peak = max(peak, sent[i], recv[i])
	}
	p.Y.Max = max(1, peak*1.15) // room for the legend
	p.Y.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick { return sizeTicks(hi, u) })
	chart := draw.Crop(dc, pngPad, -pngPad, H-pngTitleH-pngChartH, -pngTitleH)
	p.Draw(chart)

	// The table, in a monospaced font so the columns line up.
	var b bytes.Buffer
	topOpt := opt
	topOpt.Bars, topOpt.Width = false, 100
	if len(table) > pngMaxTable {
		table = table[:pngMaxTable]
	}
	if err := WritePeriods(&b, "table", table, topOpt); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	y := H - pngTitleH - pngChartH - pngPad
	for i, l := range lines {
		clr := color.Color(color.Black)
		if i == 0 {
			clr = color.Gray{Y: 0x55}
		}
		dc.FillText(txt(mono, pngTableFontS, clr), vg.Point{X: pngPad, Y: y}, l)
		y -= pngLineH
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("png: %w", err)
	}
	return nil
}

// sizeTicks puts the y axis ticks on round amounts of the unit the labels
// use (1, 2 or 5 × a power of ten of KiB, MiB, ... or of kbit, Mbit, ...),
// at most 6 labelled.
func sizeTicks(hi float64, u Units) []plot.Tick {
	base, scale := 1024.0, 1.0 // bytes
	if u.Bits {
		base, scale = 1000, 8
	}
	v := hi * scale // in the label's base unit (B or bit)
	unit := 1.0
	for v/unit >= base {
		unit *= base
	}
	step := unit
	for _, m := range []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000} {
		step = m * unit
		if v/step <= 5 {
			break
		}
	}
	var ts []plot.Tick
	for x := 0.0; x <= v; x += step {
		ts = append(ts, plot.Tick{Value: x / scale, Label: u.Size(uint64(x / scale))})
		for i := 1; i < 4; i++ { // minor ticks
			if m := x + step*float64(i)/4; m <= v {
				ts = append(ts, plot.Tick{Value: m / scale})
			}
		}
	}
	return ts
}

// shortLabel names a period on the chart's axis.
func shortLabel(kind string, t time.Time) string {
	switch kind {
	case Period5Min:
		return t.Format("15:04")
	case PeriodHour:
		return t.Format("15h")
	case PeriodDay:
		return t.Format("Jan 2")
	case PeriodMonth:
		return t.Format("Jan 06")
	}
	return t.Format("2006")
}
