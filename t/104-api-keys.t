#!/usr/bin/perl
# The API-key recipe of conf/starling-production.conf, run as written:
# a map from "Authorization: Bearer KEY" (keys file) to a tenant, 401 in
# the OpenAI error shape for missing or unknown keys before the module
# sees the request, and the tenant as the token-budget key.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest;

StarlingTest::require_nginx();

open my $pc, '<', StarlingTest::root() . '/conf/starling-production.conf'
    or die "production conf: $!";
my $prod = do { local $/; <$pc> };
close $pc;

my ($http) = $prod =~ /^[ \t]*# BEGIN api-keys \(.*?\n(.*?)^[ \t]*# END api-keys$/ms;
my ($loc) = $prod =~ /^[ \t]*# BEGIN api-keys-location\n(.*?)^[ \t]*# END api-keys-location$/ms;
ok($http && $loc, 'the recipe blocks are in conf/starling-production.conf')
    or BAIL_OUT('no recipe');

$http =~ s{/etc/nginx/starling-api-keys\.map}{{{PREFIX}}/api-keys.map}g;
like($http, qr/\{\{PREFIX\}\}\/api-keys\.map/, 'keys file path replaced');

my $t = StarlingTest->new(http => <<"EOF2", server => <<"EOF3");
    starling_model tiny path={{MODEL260K}};
    log_format tenant '\$uri \$status tenant=\$starling_api_tenant';
    access_log {{PREFIX}}/logs/tenant.log tenant;
$http
EOF2
        location /v1/ {
$loc
            starling openai;
        }
        location / { starling worker; }
EOF3

open my $kf, '>', "$t->{prefix}/api-keys.map" or die $!;
print $kf qq{"Bearer sk-alice-0123456789abcdef" alice;\n};
print $kf qq{"Bearer sk-bob-fedcba9876543210"   bob;\n};
close $kf;
$t->start;

my $body = { model => 'tiny', prompt => 'Once upon a time', max_tokens => 3 };

my $r = $t->request('POST', '/v1/completions', $body);
is($r->{status}, 401, 'no key: 401');
is($r->{json}{error}{code}, 'invalid_api_key', '... OpenAI error object');
like($r->{headers}{'content-type'}, qr{^application/json}, '... as JSON');
like($r->{headers}{'www-authenticate'}, qr/^Bearer/, '... WWW-Authenticate: Bearer');

$r = $t->request('POST', '/v1/completions', $body,
                 Authorization => 'Bearer sk-mallory-000');
is($r->{status}, 401, 'unknown key: 401');

$r = $t->request('GET', '/v1/models');
is($r->{status}, 401, '/v1/models needs a key too');

$r = $t->request('POST', '/v1/completions', $body,
                 Authorization => 'Bearer sk-alice-0123456789abcdef');
is($r->{status}, 200, "alice's key: 200");
is($r->{headers}{'ratelimit-limit'}, 200000, '... under her token budget');
# (what a request spends is refilled within milliseconds at this rate;
# t/103-token-limit.t counts budgets exactly)
$r = $t->request('POST', '/v1/completions', $body,
                 Authorization => 'Bearer sk-alice-0123456789abcdef');
is($r->{status}, 200, "alice's second request");

$r = $t->request('POST', '/v1/completions', $body,
                 Authorization => 'Bearer sk-bob-fedcba9876543210');
is($r->{status}, 200, "bob's key: 200");
is($r->{headers}{'ratelimit-remaining'}, 200000, "bob's budget is his own");

$r = $t->request('GET', '/v1/models', undef,
                 Authorization => 'Bearer sk-bob-fedcba9876543210');
is($r->{status}, 200, '/v1/models with a key');

$t->stop;

open my $lf, '<', "$t->{prefix}/logs/tenant.log" or die $!;
# without the harness's /ready polls
my @log = map { s{^\S+ }{}r } grep { !m{^/ready } } <$lf>;
close $lf;
is_deeply([ map { chomp; $_ } @log ],
          [ '401 tenant=', '401 tenant=', '401 tenant=', '200 tenant=alice',
            '200 tenant=alice', '200 tenant=bob', '200 tenant=bob' ],
          'the tenant of every request, in the access log');

$t->check_error_log;
done_testing();
