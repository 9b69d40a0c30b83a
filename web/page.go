package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strconv"
)

// pageFiles is the "who is online" page: HTML, script and style, built
// into the binary so that it needs no network at run time.
//
//go:embed page
var pageFiles embed.FS

// registerPage serves the page at / and its files next to it.
func (a *API) registerPage(mux *http.ServeMux) {
	files, _ := fs.Sub(pageFiles, "page")
	static := http.FileServerFS(files)
	page := func(name string) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w := &codeWriter{ResponseWriter: rw}
			defer func() { a.m.HTTPRequests.WithLabelValues("page", strconv.Itoa(max(w.code, 200))).Inc() }()
			h := w.Header()
			// The page loads nothing from elsewhere and talks only to this
			// origin; it is framed by no one.
			h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cache-Control", "no-cache")
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + name
			if name == "index.html" {
				r2.URL.Path = "/"
			}
			static.ServeHTTP(w, r2)
		})
	}
	mux.Handle("GET /{$}", page("index.html"))
	entries, _ := fs.ReadDir(files, ".")
	for _, e := range entries {
		if e.Name() != "index.html" && !e.IsDir() {
			mux.Handle("GET /"+e.Name(), page(e.Name()))
		}
	}
}
