package api

import "testing"

// Paths that are not UTF-8 text used to reach http.FileServerFS, which
// answered fs.ErrInvalid with a 500.
func TestInvalidUTF8PathsAre4xx(t *testing.T) {
	e := newEnv(t, Config{})
	for _, p := range []string{"/%ff", "/%c3%28", "/metrics%ff", "/api/%ff", "/assets/%ff.js", "/%00", "/a%80b/"} {
		rec := e.do(t, "GET", p)
		if rec.Code < 400 || rec.Code >= 500 {
			t.Errorf("GET %s: %d %s", p, rec.Code, rec.Body)
		}
	}
}
