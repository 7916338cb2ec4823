package report

// orDash shows an empty name as "-" in tables (JSON/CSV keep "").
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
