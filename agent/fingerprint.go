package agent

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/ec2sec/ec2sec/internal/safefile"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// Secret fingerprints are HMAC-SHA256 keyed per host, so they can be compared between scans
// (and, with a fleet key, between hosts) but not brute-forced back to a password by anyone
// who reads the findings. The key comes from, in order:
//  1. fingerprint_key_file in the config: a fleet-wide key (at least 16 bytes), so the same
//     secret has the same fingerprint on every host;
//  2. <state_dir>/fingerprint.key, 32 random bytes created 0600 on first use (dir 0700);
//  3. an ephemeral random key when neither can be had (a non-root scan, an image pipeline
//     without a state dir). Fingerprints, and so the ids of secret results, then differ
//     between runs; the log says so at info level.
const (
	fingerprintKeyName = "fingerprint.key"
	fingerprintKeySize = 32
	minFleetKeySize    = 16
	maxFleetKeySize    = 4096
)

// SecretsUser is implemented by probes that need the secret detector and fingerprint key.
type SecretsUser interface {
	UsesSecrets() bool
}

// prepareSecrets builds the detector and loads the fingerprint key, only when a selected
// probe needs them and the caller did not pass them.
func prepareSecrets(o *ScanOptions, selected []probes.Probe) error {
	if !slices.ContainsFunc(selected, func(p probes.Probe) bool {
		u, ok := p.(SecretsUser)
		return ok && u.UsesSecrets()
	}) {
		return nil
	}
	if o.Secrets == nil {
		d, err := secrets.New()
		if err != nil {
			return fmt.Errorf("secret detector: %w", err)
		}
		o.Secrets = d
	}
	if o.FingerprintKey == nil {
		k, err := LoadFingerprintKey(o.Config, o.Log)
		if err != nil {
			return err
		}
		o.FingerprintKey = k
	}
	return nil
}

// LoadFingerprintKey returns the key for secret fingerprints (see above). It fails only when
// a configured fleet key file cannot be used: silently falling back would change every
// fingerprint of the fleet.
func LoadFingerprintKey(cfg Config, log *slog.Logger) ([]byte, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.FingerprintKeyFile != "" {
		k, err := readFleetKey(cfg.FingerprintKeyFile)
		if err != nil {
			return nil, fmt.Errorf("fingerprint_key_file: %w", err)
		}
		return k, nil
	}
	if cfg.StateDir != "" {
		k, err := hostKey(cfg.StateDir)
		if err == nil {
			return k, nil
		}
		log.Info("secret fingerprints use an ephemeral key: ids of secret results will differ between runs", "reason", err.Error())
	} else {
		log.Info("secret fingerprints use an ephemeral key: no state_dir; ids of secret results will differ between runs")
	}
	k := make([]byte, fingerprintKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("fingerprint key: %w", err)
	}
	return k, nil
}

func readFleetKey(path string) ([]byte, error) {
	b, err := readKeyFile(path, maxFleetKeySize, safefile.Admin)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > maxFleetKeySize:
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFleetKeySize)
	case len(b) < minFleetKeySize:
		return nil, fmt.Errorf("%s: shorter than %d bytes", path, minFleetKeySize)
	}
	return b, nil
}

// readKeyFile reads at most max+1 bytes of the regular file at path, so a caller can tell an
// oversized key from a good one without reading a huge file. It is opened as trust says
// (safefile: no symlink, no FIFO, owner and mode checked on the descriptor): a key another
// user planted would let them choose, and so brute-force, every fingerprint.
func readKeyFile(path string, max int64, trust safefile.Trust) ([]byte, error) {
	f, _, err := safefile.Open(path, os.O_RDONLY, 0, trust)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// hostKey reads <dir>/fingerprint.key, creating it (and dir) on first use.
func hostKey(dir string) ([]byte, error) {
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fingerprintKeyName)
	for range 2 {
		k, err := readHostKey(path)
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		err = createHostKey(path)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// created now, or by a concurrent scan: read it back
	}
	return readHostKey(path)
}

func readHostKey(path string) ([]byte, error) {
	k, err := readKeyFile(path, fingerprintKeySize, safefile.Agent)
	if err != nil {
		return nil, err
	}
	if len(k) != fingerprintKeySize {
		return nil, fmt.Errorf("%s: not a %d-byte key", path, fingerprintKeySize)
	}
	return k, nil
}

func createHostKey(path string) error {
	k := make([]byte, fingerprintKeySize)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), fingerprintKeyName+".*") // 0600
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(k)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	// Link, not rename: a key another scan created meanwhile wins (fs.ErrExist), so two
	// concurrent first scans never end up with different keys.
	err = os.Link(tmp, path)
	os.Remove(tmp)
	if err != nil {
		var le *os.LinkError
		if errors.As(err, &le) && errors.Is(le.Err, fs.ErrExist) {
			return fs.ErrExist
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}
