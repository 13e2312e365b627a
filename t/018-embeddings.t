#!/usr/bin/perl
# POST /v1/embeddings: the list object, float and base64 encodings of the
# same vectors, L2 normalisation (and normalize: false), batches of inputs
# equal to the inputs one by one, token-id inputs, a client that goes away
# mid-batch (everything released), and the 400s (empty input, too long for
# the context naming the index, dimensions, bad encoding_format), on the
# openai route and a `starling embeddings;` location.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(time);
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}} ctx=64;
    starling_model q8 path={{MODELQ8}};
EOF2
        location /v1/ { starling openai; }
        location = /embed { starling embeddings; }
        location / { starling worker; }
EOF3

sub norm2 { my $s = 0; $s += $_ * $_ for @{ $_[0] }; return $s }
sub maxdiff {
    my ($a, $b) = @_;
    my $m = 0;
    for my $i (0 .. $#$a) {
        my $d = abs($a->[$i] - $b->[$i]);
        $m = $d if $d > $m;
    }
    return $m;
}

my $r = $t->request('POST', '/v1/embeddings',
                    { model => 'tiny', input => 'Once upon a time' });
is($r->{status}, 200, 'embeddings: 200');
my $j = $r->{json};
is($j->{object}, 'list', 'object list');
is($j->{model}, 'tiny', 'model');
is(scalar @{ $j->{data} }, 1, 'one item');
is($j->{data}[0]{object}, 'embedding', 'item object');
is($j->{data}[0]{index}, 0, 'index 0');
my $v = $j->{data}[0]{embedding};
is(scalar @$v, 64, 'n_embd floats (stories260K: 64)');
ok(abs(norm2($v) - 1) < 1e-5, 'L2-normalised by default (|v|^2 = ' . norm2($v) . ')');
my $tok = $t->request('POST', '/tokenize', { model => 'tiny', prompt => 'Once upon a time' });
is($j->{usage}{prompt_tokens}, $tok->{json}{n_tokens} // scalar @{ $tok->{json}{tokens} },
   'usage.prompt_tokens = the input\'s tokens');
is($j->{usage}{total_tokens}, $j->{usage}{prompt_tokens}, 'total_tokens = prompt_tokens');

# base64: little-endian float32 of the same vector, bit for bit
$r = $t->request('POST', '/v1/embeddings',
                 { model => 'tiny', input => 'Once upon a time', encoding_format => 'base64' });
is($r->{status}, 200, 'base64: 200');
my $b64 = $r->{json}{data}[0]{embedding};
ok(!ref $b64, 'base64: a string');
my @f = unpack('f<*', decode_base64($b64));
is(scalar @f, 64, 'base64: 64 float32');
my @from_float = unpack('f<*', pack('f<*', @$v));
is_deeply(\@f, \@from_float, 'base64 and float encodings carry the same float32 values');

# normalize: false
$r = $t->request('POST', '/embed', { input => 'Once upon a time', normalize => JSON::PP::false });
is($r->{status}, 200, 'normalize false: 200 (embeddings location)');
my $raw = $r->{json}{data}[0]{embedding};
my $n = sqrt(norm2($raw));
ok(abs($n - 1) > 1e-3, "normalize false: not unit length (|v| = $n)");
ok(maxdiff([ map { $_ / $n } @$raw ], $v) < 1e-6, 'normalize false: v / |v| = the default vector');

# a batch: same vectors as one by one, in order, usage summed
my @inputs = ('Once upon a time', 'The cat sat on the mat', 'Lily');
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => \@inputs });
is($r->{status}, 200, 'batch: 200');
is(scalar @{ $r->{json}{data} }, 3, 'batch: three items');
is_deeply([ map { $_->{index} } @{ $r->{json}{data} } ], [ 0, 1, 2 ], 'batch: indices in order');
my $sum = 0;
for my $i (0 .. 2) {
    my $one = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => $inputs[$i] });
    is_deeply($r->{json}{data}[$i]{embedding}, $one->{json}{data}[0]{embedding},
              "batch: item $i equals its input alone");
    $sum += $one->{json}{usage}{prompt_tokens};
}
is($r->{json}{usage}{prompt_tokens}, $sum, 'batch: usage sums the inputs');
ok(maxdiff($r->{json}{data}[0]{embedding}, $r->{json}{data}[1]{embedding}) > 1e-3,
   'batch: different inputs, different vectors');

# token ids: one array, and an array of arrays
my $ids = $tok->{json}{tokens};
$ids = [ map { ref $_ ? $_->{id} : $_ } @$ids ];
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => $ids });
is($r->{status}, 200, 'token ids: 200');
is_deeply($r->{json}{data}[0]{embedding}, $v, 'token ids: same vector as the text');
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => [ $ids, [ 1, 2, 3 ] ] });
is(scalar @{ $r->{json}{data} }, 2, 'arrays of token ids: two items');
is_deeply($r->{json}{data}[0]{embedding}, $v, '... the first as the text');

# the q8 model (another n_embd)
$r = $t->request('POST', '/v1/embeddings', { model => 'q8', input => 'Once upon a time' });
is($r->{status}, 200, 'q8 model: 200');
ok(abs(norm2($r->{json}{data}[0]{embedding}) - 1) < 1e-5, 'q8 model: unit length');

# errors
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => '' });
is($r->{status}, 400, 'empty string: 400');
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => [] });
is($r->{status}, 400, 'empty array: 400');
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny' });
is($r->{status}, 400, 'no input: 400');
is($r->{json}{error}{param}, 'input', '... naming input');
my $long = join(' ', ('Once upon a time there was a little girl') x 20);
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => [ 'Lily', $long ] });
is($r->{status}, 400, 'input longer than the context: 400');
like($r->{json}{error}{message}, qr/input\[1\]/, '... naming the index');
is($r->{json}{error}{code}, 'context_length_exceeded', '... code context_length_exceeded');
my $fill = [ (1) x 64 ];
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => $fill });
is($r->{status}, 200, 'an input of exactly the context: 200');
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => [ (1) x 65 ] });
is($r->{status}, 400, 'one token more: 400');
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => [ 1, 99999 ] });
is($r->{status}, 400, 'token id out of the vocabulary: 400');
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => 'x', dimensions => 32 });
is($r->{status}, 400, 'dimensions != n_embd: 400');
is($r->{json}{error}{param}, 'dimensions', '... naming dimensions');
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => 'x', dimensions => 64 });
is($r->{status}, 200, 'dimensions = n_embd: 200');
$r = $t->request('POST', '/v1/embeddings', { model => 'tiny', input => 'x', encoding_format => 'int8' });
is($r->{status}, 400, 'encoding_format int8: 400');
$r = $t->request('POST', '/v1/embeddings', { model => 'nope', input => 'x' });
is($r->{status}, 404, 'unknown model: 404');
$r = $t->request('GET', '/v1/embeddings');
is($r->{status}, 405, 'GET: 405');

# the client goes away mid-batch: every input's sequence is released
{
    my $s = $t->connect_server;
    print $s $t->build_request('POST', '/v1/embeddings',
        { model => 'tiny', input => [ map { "$long $_" =~ s/^(\S+(?:\s+\S+){0,40}).*/$1/r } 1 .. 64 ] });
    select(undef, undef, undef, 0.02);
    close $s;
}
# a bound on waiting, not a timing check: slow machines only wait longer
my $deadline = time + 60;
my $h;
while (time < $deadline) {
    $h = $t->request('GET', '/health')->{json};
    last if $h->{active_sequences} == 0 && $h->{queued_sequences} == 0
            && $h->{live_requests} == 0;
    select(undef, undef, undef, 0.05);
}
is($h->{active_sequences} + $h->{queued_sequences} + $h->{live_requests}, 0,
   'client gone: no sequence left');
is($h->{kv_blocks_free}, $h->{kv_blocks_total}, 'client gone: all KV blocks free');

# generation still works beside it, and the KV blocks came back
$r = $t->request('POST', '/v1/completions',
                 { model => 'tiny', prompt => 'Once upon a time', max_tokens => 4 });
is($r->{status}, 200, 'completions after embeddings: 200');

$t->stop;
$t->check_error_log;
done_testing();
