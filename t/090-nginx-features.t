#!/usr/bin/perl
# What nginx gives Starling for free, checked on a real server: TLS,
# auth_basic, limit_req, allow/deny on /metrics — all configured with
# stock nginx directives around `starling` locations (as in
# conf/starling-production.conf).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use StarlingTest;

StarlingTest::require_nginx();
plan skip_all => 'curl and openssl needed'
    unless -x '/usr/bin/curl' && -x '/usr/bin/openssl';

# curl and openssl are ordinary programs: keep an LD_PRELOAD meant for
# nginx (the ASan run of this suite) away from them
my $env = 'env -u LD_PRELOAD';

my $dir = tempdir('starling-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system("$env openssl req -x509 -newkey rsa:2048 -nodes -keyout $dir/key.pem "
       . "-out $dir/cert.pem -days 1 -subj /CN=localhost >/dev/null 2>&1") == 0
    or plan skip_all => 'openssl could not make a certificate';
my $hash = `$env openssl passwd -apr1 s3cret`;
chomp $hash;
open my $fh, '>', "$dir/htpasswd" or die $!;
print $fh "alice:$hash\n";
close $fh;
chmod 0755, $dir;
chmod 0644, "$dir/htpasswd", "$dir/cert.pem", "$dir/key.pem";

my $tls = StarlingTest::free_port();
my $t = StarlingTest->new(http => <<"EOF2", server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}};
    limit_req_zone \$binary_remote_addr zone=gen:1m rate=1r/m;
    limit_req_status 429;

    server {
        listen 127.0.0.1:$tls ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;

        location /v1/ {
            auth_basic "starling";
            auth_basic_user_file $dir/htpasswd;
            starling openai;
        }
        location = /metrics {
            allow 10.255.255.1;
            deny all;
            starling metrics;
        }
        location / { starling worker; }
    }
EOF2
        location /limited/ { limit_req zone=gen nodelay; starling worker; }
        location / { starling worker; }
EOF3

my $base = "https://127.0.0.1:$tls";
my $body = '{"prompt":"Once upon a time","max_tokens":8,"temperature":0,"stream":true}';

sub curl {
    my (@args) = @_;
    my $out = `$env curl -sk -m 20 -w '\\n%{http_code}' @args 2>/dev/null`;
    my ($text, $code) = $out =~ /^(.*)\n(\d+)$/s;
    return ($code // 0, $text // '');
}

my ($code, $text) = curl("-H 'Content-Type: application/json' -d '$body' $base/v1/completions");
is($code, 401, 'TLS, no credentials: 401 from auth_basic');

($code) = curl("-u alice:wrong -d '$body' $base/v1/completions");
is($code, 401, 'wrong password: 401');

($code, $text) = curl("-N -u alice:s3cret -H 'Content-Type: application/json' "
                      . "-d '$body' $base/v1/completions");
is($code, 200, 'TLS + auth: 200');
like($text, qr/^data: \{.*"text"/m, 'streamed completion chunks over TLS');
like($text, qr/data: \[DONE\]/, '... ending with [DONE]');

($code) = curl("$base/metrics");
is($code, 403, '/metrics denied by allow/deny');

($code, $text) = curl("$base/health");
is($code, 200, '/health over TLS');
like($text, qr/"model_loaded":true/, '... model loaded');

my $r1 = $t->request('POST', '/limited/tokenize', { content => 'hello' });
my $r2 = $t->request('POST', '/limited/tokenize', { content => 'hello' });
is($r1->{status}, 200, 'limit_req: first request passes');
is($r2->{status}, 429, 'limit_req: second request in the same minute: 429');

$t->check_error_log;
done_testing();
