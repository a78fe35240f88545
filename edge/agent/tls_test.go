package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		tls     TLSConfig
		wantErr string
	}{
		{name: "system roots"},
		{name: "ca and client certificate", tls: TLSConfig{CAFile: cert, CertFile: cert, KeyFile: key}},
		{name: "insecure", tls: TLSConfig{InsecureSkipVerify: true}},
		{name: "missing ca", tls: TLSConfig{CAFile: filepath.Join(dir, "nope.pem")}, wantErr: "broker.tls.ca_file"},
		{name: "ca without certificate", tls: TLSConfig{CAFile: garbage}, wantErr: "holds no PEM certificate"},
		{name: "key mismatch", tls: TLSConfig{CertFile: cert, KeyFile: garbage}, wantErr: "client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc2, err := tlsConfig(BrokerConfig{URL: "ssl://broker.test:8883", TLS: tc.tls})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("tlsConfig = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc2.ServerName != "broker.test" || tc2.InsecureSkipVerify != tc.tls.InsecureSkipVerify ||
				(tc.tls.CAFile != "") != (tc2.RootCAs != nil) || (tc.tls.CertFile != "") != (len(tc2.Certificates) == 1) {
				t.Fatalf("tls config %+v", tc2)
			}
		})
	}
}
