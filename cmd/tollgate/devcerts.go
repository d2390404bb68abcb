package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate/server/auth"
)

// devClients are the client certificates dev-certs issues, one per role, and the callers file that
// maps them. They are for trying TLS locally, never for production.
var devClients = []struct{ name, role string }{
	{"orchestrator", auth.RoleDecide},
	{"auditor", auth.RoleAudit},
	{"admin", auth.RoleAdmin},
	{"agent_alloc", auth.RoleAgentPrefix + "agent_alloc"},
}

// devCerts writes a throwaway CA, a server certificate for localhost, client certificates for each
// role, a bearer token and a callers.json that configures them all.
func devCerts(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	validFor := fs.Duration("valid-for", 30*24*time.Hour, "certificate lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("dev-certs: want exactly one argument, the output directory")
	}
	dir := fs.Arg(0)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dev-certs: %w", err)
	}
	notAfter := time.Now().Add(*validFor)

	caKey, caCert, err := issue(nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Tollgate dev CA (not for production)"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		NotAfter:              notAfter,
	})
	if err != nil {
		return fmt.Errorf("dev-certs: CA: %w", err)
	}
	if err := writePair(dir, "ca", caKey, caCert); err != nil {
		return err
	}
	serverKey, serverCert, err := issue(caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		NotAfter:    notAfter,
	})
	if err != nil {
		return fmt.Errorf("dev-certs: server: %w", err)
	}
	if err := writePair(dir, "server", serverKey, serverCert); err != nil {
		return err
	}
	cfg := auth.Config{}
	for _, c := range devClients {
		key, cert, err := issue(caKey, caCert, &x509.Certificate{
			Subject:     pkix.Name{CommonName: c.name},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			NotAfter:    notAfter,
		})
		if err != nil {
			return fmt.Errorf("dev-certs: client %s: %w", c.name, err)
		}
		if err := writePair(dir, c.name, key, cert); err != nil {
			return err
		}
		cfg.Callers = append(cfg.Callers, auth.CallerConfig{Name: c.name, CertNames: []string{c.name}, Roles: []string{c.role}})
	}
	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("dev-certs: token: %w", err)
	}
	tokenText := hex.EncodeToString(token)
	cfg.Callers = append(cfg.Callers, auth.CallerConfig{Name: "token-client", TokenSHA256: []string{auth.HashToken(tokenText)}, Roles: []string{auth.RoleDecide}})
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tokenText+"\n"), 0o600); err != nil {
		return fmt.Errorf("dev-certs: %w", err)
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "callers.json"), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("dev-certs: %w", err)
	}
	fmt.Fprintf(stdout, "wrote a dev CA, server and client certificates (%s), a bearer token and callers.json to %s\n",
		"orchestrator, auditor, admin, agent_alloc", dir)
	return nil
}

// issue creates a key and a certificate from tmpl, signed by parent (self-signed when parent is nil).
func issue(parentKey *ecdsa.PrivateKey, parent, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parentKey, parent
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func writePair(dir, name string, key *ecdsa.PrivateKey, cert *x509.Certificate) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("dev-certs: %s key: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("dev-certs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return fmt.Errorf("dev-certs: %w", err)
	}
	return nil
}
