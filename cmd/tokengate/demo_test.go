package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `tokengate demo` as a user would and follows its printed
// instructions: the token reaches both backends, each verifies its own token.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo exited with %v", err)
		}
	})

	var token string
	var urls []string
	curl := regexp.MustCompile(`^curl -s -H "Authorization: Bearer \$TOKEN" (\S+)$`)
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "export TOKEN="); ok {
			token = v
		}
		if m := curl.FindStringSubmatch(line); m != nil {
			urls = append(urls, m[1])
		}
		if strings.HasPrefix(line, "Ready.") {
			break
		}
	}
	go io.Copy(io.Discard, pr) // keep the demo's later output flowing
	if token == "" || len(urls) != 2 {
		t.Fatalf("demo printed token=%q and %d curl URLs, want a token and 2", token, len(urls))
	}

	want := map[string]string{"orders": "https://orders.example.com", "inventory": "https://inventory.example.com"}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, u := range urls {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var echo struct {
			Backend  string         `json:"backend"`
			Verified bool           `json:"verified"`
			Header   map[string]any `json:"header"`
			Claims   map[string]any `json:"claims"`
		}
		err = json.NewDecoder(resp.Body).Decode(&echo)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !echo.Verified {
			t.Fatalf("%s: status %d, verified %v, err %v", u, resp.StatusCode, echo.Verified, err)
		}
		if echo.Header["typ"] != "at+jwt" {
			t.Errorf("%s backend saw header %v, want typ at+jwt (a token the gateway minted)", echo.Backend, echo.Header)
		}
		if echo.Claims["aud"] != want[echo.Backend] {
			t.Errorf("%s backend saw aud %v, want %q", echo.Backend, echo.Claims["aud"], want[echo.Backend])
		}
		scope, _ := echo.Claims["scope"].(string)
		for _, s := range strings.Fields(scope) {
			if !strings.HasPrefix(s, echo.Backend+":") {
				t.Errorf("%s backend received foreign scope %q", echo.Backend, s)
			}
		}
	}
}
