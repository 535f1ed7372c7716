package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The real servers a test package shares: started once in TestMain (one
// per package, so `make test` does not pay for one per test), on a free
// loopback port, in a temporary directory, and stopped by their PID.

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts a connection, or the process exits.
func waitTCP(addr string, exited <-chan struct{}, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited before listening on %s", addr)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s after %s", addr, d)
}

// Proc is a started server process.
type Proc struct {
	stop   syscall.Signal // what asks it to stop; SIGTERM when 0
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	once   sync.Once
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProc(cmd *exec.Cmd, cred *syscall.Credential) (*Proc, error) {
	p := &Proc{cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// Its own process group, so Stop ends what it started and nothing
	// else; killed with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Output is what the process has printed (for a failure message).
func (p *Proc) Output() string { return p.out.String() }

// Stop ends the process (SIGTERM, then SIGKILL after 5 s) and waits.
func (p *Proc) Stop() {
	p.once.Do(func() {
		pid := p.cmd.Process.Pid
		sig := p.stop
		if sig == 0 {
			sig = syscall.SIGTERM
		}
		syscall.Kill(-pid, sig)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-p.exited
		}
	})
}

// S3Server is versitygw serving a posix directory.
type S3Server struct {
	*Proc
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	dir       string
}

// VersityGW finds the versitygw binary: on $PATH or in $(go env GOPATH)/bin,
// where scripts/install-test-deps.sh builds it.
func VersityGW() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(filepath.SplitList(gopath)[0], "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw not found on PATH or at %s (scripts/install-test-deps.sh builds it)", p)
	}
	return p, nil
}

// StartS3 starts versitygw on a free loopback port over a new temporary
// directory. Stop it (and its directory goes) with Stop.
func StartS3() (*S3Server, error) {
	bin, err := VersityGW()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sealpost-s3-")
	if err != nil {
		return nil, err
	}
	var last error
	for range 3 { // the free port can be taken between the check and the start
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		s := &S3Server{Endpoint: "http://" + addr, AccessKey: "sealpost-test", SecretKey: "sealpost-test-secret", dir: dir}
		cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", addr, "posix", dir)
		if s.Proc, err = startProc(cmd, nil); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if last = waitTCP(addr, s.exited, 30*time.Second); last == nil {
			return s, nil
		}
		s.Proc.Stop()
		last = fmt.Errorf("versitygw: %v: %s", last, s.Output())
	}
	os.RemoveAll(dir)
	return nil, last
}

// Stop ends the server and removes its directory.
func (s *S3Server) Stop() {
	if s == nil {
		return
	}
	s.Proc.Stop()
	os.RemoveAll(s.dir)
}
