#!/usr/bin/perl
# nginx -t validates every declared model file without loading it: the
# GGUF structure, the architecture, tensor types and shapes, the sha256
# when given. Each broken file below is refused with the directive's
# file:line and the reason; a reload with one is refused and the running
# workers keep serving the old model.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use Digest::SHA qw(sha256_hex);
use StarlingTest;

StarlingTest::require_nginx();

my $good = do {
    open my $mf, '<:raw', StarlingTest::root() . '/models/stories260K.gguf'
        or die "model: $!";
    local $/;
    <$mf>;
};

# GGUF tensor table: name => offset of its (n_dims, dims..., type) record
sub tensor_records {
    my ($img) = @_;
    my $pos = 4 + 4;
    my ($nt, $nkv) = unpack('Q<Q<', substr($img, $pos, 16));
    $pos += 16;
    my $str = sub { my $n = unpack('Q<', substr($img, $pos, 8));
                    my $s = substr($img, $pos + 8, $n); $pos += 8 + $n; $s };
    my %size = (0 => 1, 1 => 1, 2 => 2, 3 => 2, 4 => 4, 5 => 4, 6 => 4,
                7 => 1, 10 => 8, 11 => 8, 12 => 8);
    my $value;
    $value = sub {
        my ($t) = @_;
        if ($t == 8) { $str->(); return; }
        if ($t == 9) {
            my ($et, $n) = unpack('L<Q<', substr($img, $pos, 12));
            $pos += 12;
            if ($et == 8 || $et == 9) { $value->($et) for 1 .. $n; }
            else { $pos += $n * $size{$et}; }
            return;
        }
        $pos += $size{$t};
    };
    for (1 .. $nkv) {
        $str->();
        my $t = unpack('L<', substr($img, $pos, 4));
        $pos += 4;
        $value->($t);
    }
    my %rec;
    for (1 .. $nt) {
        my $name = $str->();
        $rec{$name} = $pos;
        my $nd = unpack('L<', substr($img, $pos, 4));
        $pos += 4 + 8 * $nd + 4 + 8;
    }
    return \%rec;
}

my $rec = tensor_records($good);
ok(exists $rec->{'output_norm.weight'} && exists $rec->{'token_embd.weight'},
   'tensor table parsed');

my %files;
# cut short: the tensor data ends outside the file
$files{truncated} = substr($good, 0, int(length($good) * 0.7));
# not GGUF at all
$files{garbage} = 'GGUF' . ("\xff" x 64);
# an architecture the engine does not implement (same length as "llama")
($files{arch} = $good) =~ s/(general\.architecture\x08\x00\x00\x00\x05\x00{7})llama/${1}gpt2x/
    or die 'no general.architecture = llama';
# output_norm.weight one element short (a shape the model cannot have)
{
    my $img = $good;
    my $p = $rec->{'output_norm.weight'};
    my $n0 = unpack('Q<', substr($img, $p + 4, 8));
    substr($img, $p + 4, 8) = pack('Q<', $n0 - 1);
    $files{shape} = $img;
}
# a tensor type without kernels (IQ2_XXS: valid GGUF, a type id ggml knows)
{
    my $img = $good;
    my $p = $rec->{'blk.0.ffn_up.weight'};
    my $nd = unpack('L<', substr($img, $p, 4));
    substr($img, $p + 4 + 8 * $nd, 4) = pack('L<', 16);
    $files{type} = $img;
}

my %want = (
    truncated => qr/past end of file/,
    garbage   => qr/GGUF|version|header|truncat/i,
    arch      => qr/architecture.*gpt2x/i,
    shape     => qr/'output_norm\.weight' has shape \[63, 1, 1, 1\], expected \[64/,
    type      => qr/blk\.0\.ffn_up\.weight.*iq2_xxs/i,
);

for my $case (sort keys %files) {
    my $t = StarlingTest->new(http => "    starling_model m "
                              . "path={{PREFIX}}/model.gguf;\n");
    open my $mf, '>:raw', "$t->{prefix}/model.gguf" or die $!;
    print $mf $files{$case};
    close $mf;
    my ($ok, $out) = $t->test_conf;
    ok(!$ok, "nginx -t refuses the $case file");
    like($out, qr/starling_model "m": ".*model\.gguf" cannot be served: /,
         '... naming the model and the file');
    like($out, $want{$case}, '... and why') or diag($out);
    note($out);
    like($out, qr/nginx\.conf:\d+/, '... at file:line');
}

# sha256: a wrong digest is refused, the right one accepted
{
    my $t = StarlingTest->new(http => "    starling_model m path={{MODEL260K}} "
                              . 'sha256=' . ('0' x 64) . ";\n");
    my ($ok, $out) = $t->test_conf;
    ok(!$ok, 'nginx -t refuses a sha256 mismatch');
    like($out, qr/sha256/i, '... saying so') or diag($out);

    $t = StarlingTest->new(http => "    starling_model m path={{MODEL260K}} "
                           . 'sha256=' . sha256_hex($good) . ";\n");
    ($ok, $out) = $t->test_conf;
    ok($ok, 'the right sha256 passes') or diag($out);
}

# reload with a broken model: refused, the old workers keep serving
{
    my $t = StarlingTest->new(http => "    starling_model m path={{MODEL260K}};\n");
    $t->start;
    my $before = $t->request('GET', '/health')->{json}{worker_pid};
    like($t->error_log, qr/\[notice\].*starling: model "m" loaded in \d+ ms: llama \S+, [\d.]+M params, weights [\d.]+ MiB, KV cache [\d.]+ MiB \(\d+ blocks\), spm tokenizer, vocab 512, ctx \d+, backend cpu/,
         'one load summary line per worker in error.log');
    open my $mf, '>:raw', "$t->{prefix}/broken.gguf" or die $!;
    print $mf $files{truncated};
    close $mf;
    $t->{http} = "    starling_model m path={{PREFIX}}/broken.gguf;\n";
    $t->write_conf;
    # not "nginx -s reload": that parses the (broken) file itself
    kill 'HUP', $t->pid;
    my $refused;
    for (1 .. 200) {
        last if ($refused = $t->error_log =~ /cannot be served/);
        sleep 0.02;
    }
    ok($refused, 'the reload is refused, with the reason in error.log');
    my $r = $t->request('POST', '/v1/completions',
                        { prompt => 'Once', max_tokens => 2 });
    is($r->{status}, 200, 'the old configuration still serves');
    is($t->request('GET', '/health')->{json}{worker_pid}, $before,
       'by the same worker');
    $t->{http} = "    starling_model m path={{MODEL260K}};\n";
    $t->write_conf;
    $t->stop;
}

done_testing();
