#!/usr/bin/perl
# A body over client_max_body_size, declared (Content-Length) or chunked,
# gets 413 with the API's error object on every surface, not nginx's HTML
# page (nginx rejects it before or while the module reads the body).

use strict; use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use StarlingTest;

StarlingTest::require_nginx();
my $t = StarlingTest->new(http => "    starling_model tiny path={{MODEL260K}};\n    client_max_body_size 1k;\n")->start;
for my $path ('/v1/completions', '/execute', '/cancel') {
    my $r = $t->request('POST', $path, { prompt => 'x' x 4000 });
    is($r->{status}, 413, "$path: 413");
    is(ref $r->{json} eq 'HASH' && $r->{json}{error}{code}, 'body_too_large', "$path: API error object") or diag($r->{body});
}
# chunked
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->{port}) or die;
my $chunk = 'x' x 3000;
print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" . sprintf("%x\r\n%s\r\n0\r\n\r\n", length $chunk, $chunk);
my $resp = do { local $/; <$s> };
like($resp, qr{^HTTP/1.1 413}, 'chunked: 413');
like($resp, qr{application/json}, 'chunked: JSON') or diag($resp);
like($resp, qr{"body_too_large"}, 'chunked: API error object');
$t->check_error_log;
done_testing();
