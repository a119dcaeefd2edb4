"""A throwaway CA and one server certificate signed by it, made with the openssl command, for the
TLS tests (the remote's certificate, the CA the extension must be given)."""
import subprocess


def make_ca_and_cert(d, common_name, subject_alt_name):
    """Writes ca.pem, srv.pem and srv.key into d. subject_alt_name: "IP:127.0.0.1" or
    "DNS:localhost"."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ple test CA",
        "-keyout", d + "/ca.key", "-out", d + "/ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + common_name,
        "-keyout", d + "/srv.key", "-out", d + "/srv.csr")
    with open(d + "/ext.cnf", "w") as f:
        f.write("subjectAltName=%s\n" % subject_alt_name)
    run("x509", "-req", "-in", d + "/srv.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", d + "/ext.cnf", "-out", d + "/srv.pem")
