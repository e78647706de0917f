package profiling

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A recording longer than the listener's write timeout still arrives whole:
// the handler moves the write deadline past the recording's end (the admin
// listener's WriteTimeout is 30 s, a CPU profile's default length).
func TestRecordingOutlivesWriteTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: Handler(), WriteTimeout: 300 * time.Millisecond}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	resp, err := http.Get("http://" + ln.Addr().String() + "/debug/pprof/trace?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("go 1.")) {
		t.Fatalf("trace past the write timeout: status %d, %d bytes, %v", resp.StatusCode, len(b), err)
	}
}

func TestSecondsAndStatus(t *testing.T) {
	for q, want := range map[string]int{"": 7, "seconds=": 7, "seconds=1": 1, "seconds=120": 120} {
		r, _ := http.NewRequest("GET", "/x?"+q, nil)
		if got, err := Seconds(r, 7); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", q, got, err, want)
		}
	}
	for _, q := range []string{"seconds=0", "seconds=121", "seconds=-3", "seconds=2s"} {
		r, _ := http.NewRequest("GET", "/x?"+q, nil)
		if _, err := Seconds(r, 7); err != ErrSeconds {
			t.Errorf("%q: %v, want ErrSeconds", q, err)
		}
	}
	for err, want := range map[error]int{ErrSeconds: 400, ErrUnknown: 404, ErrBusy: 409, io.ErrUnexpectedEOF: 500} {
		if got := Status(err); got != want {
			t.Errorf("Status(%v) = %d, want %d", err, got, want)
		}
	}
}
