#!/usr/bin/perl
# bench-compare.pl: Starling's starling-bench and llama.cpp's llama-bench
# on the same GGUF files and thread counts, interleaved (A B A B ...), with
# the ratio and how far each figure is from the machine's limit.
#
#   tools/bench-compare.pl --llamacpp-bin DIR [--files F,F] [--threads 1,2]
#                          [--reps N] [--pp 512] [--tg 64] [--quick]
#
# (make bench-compare passes LLAMACPP_BIN, FILES, THREADS, REPS, QUICK.)
#
# Each repetition runs one starling-bench (-r 1) and then one llama-bench
# (-r 1) on the same file and threads, so slow drifts of a shared machine
# (other jobs, turbo, page cache) hit both alike; the table gives the
# median of the repetitions. Both programs do their own warm-up run.
#
# Limits:
#   decode:  weight bytes per token x tok/s = GB/s streamed, against the
#            streaming-read bandwidth starling-membw measures with as many
#            threads;
#   prefill: 2 x n_params operations per token x tok/s, against the cores'
#            peak: FP32 = cores x GHz x FMA pipes x 8 lanes x 2 (an FMA is
#            two flops); int8 = cores x GHz x FMA pipes x 32 byte pairs x 2
#            (vpmaddubsw: 32 u8 x s8 products and their pairwise adds, on
#            the same two vector pipes). Quantized types are held to the
#            int8 peak (both engines multiply them as int8), float types to
#            the FP32 peak.
#
# Exit status: 0 all runs done, 1 some run failed (the table says which),
# 2 usage or setup error (missing llama.cpp build, model file or tool).

use strict;
use warnings;
use Getopt::Long qw(GetOptions);
use JSON::PP ();

my $me = 'bench-compare';
my %o = (
    'llamacpp-bin' => $ENV{LLAMACPP_BIN} // '',
    'starling-bin' => 'build',
    threads        => '1,2',
    reps           => 3,
    pp             => 512,
    tg             => 64,
    files          => '',
    quick          => 0,
    'membw-mib'    => 512,
);
GetOptions(\%o, 'llamacpp-bin=s', 'starling-bin=s', 'threads=s', 'reps=i',
           'pp=i', 'tg=i', 'files=s', 'quick!', 'membw-mib=i', 'help')
    or usage(2);
usage(0) if $o{help};

sub usage {
    my ($rc) = @_;
    my $fh = $rc ? \*STDERR : \*STDOUT;
    print $fh <<"EOF";
usage: $0 --llamacpp-bin DIR --files F1.gguf,F2.gguf [options]
  --llamacpp-bin DIR   llama.cpp's bin folder (holds llama-bench); env LLAMACPP_BIN
  --files LIST         GGUF files, comma-separated
  --threads LIST       thread counts (default 1,2)
  --reps N             interleaved repetitions, median reported (default 3)
  --pp N, --tg N       prompt / generation lengths (default 512 / 64)
  --quick              one repetition (a bounded run)
  --starling-bin DIR   where starling-bench and starling-membw are (default build)
EOF
    exit $rc;
}

sub fail_setup { print STDERR "$me: $_[0]\n"; exit 2; }

# --- setup checks: each says what is missing and how to get it -----------

my $lb = "$o{'llamacpp-bin'}/llama-bench";
if ($o{'llamacpp-bin'} eq '') {
    fail_setup("no llama.cpp build given. This comparison runs llama.cpp's "
             . "llama-bench as measuring equipment; build llama.cpp (CPU "
             . "backend, e.g. tag b10573) and pass its bin folder: "
             . "make bench-compare LLAMACPP_BIN=/path/to/llama.cpp/build/bin");
}
-x $lb or fail_setup("$lb: not found or not executable (LLAMACPP_BIN must "
                   . "be the folder holding llama-bench)");
my $sb = "$o{'starling-bin'}/starling-bench";
my $mb = "$o{'starling-bin'}/starling-membw";
for my $t ($sb, $mb) {
    -x $t or fail_setup("$t: not built (make -j2 tools)");
}
my @files = grep { length } split /,/, $o{files};
@files or fail_setup("no model files given (--files or FILES=)");
for my $f (@files) {
    -f $f && -r $f or fail_setup("$f: model file not found or not readable");
}
my @threads = split /,/, $o{threads};
for my $t (@threads) {
    $t =~ /^[1-9][0-9]{0,3}$/ or fail_setup("bad thread count \"$t\"");
}
$o{reps} = 1 if $o{quick};
$o{reps} >= 1 or fail_setup("--reps must be at least 1");
$o{pp} >= 1 && $o{tg} >= 1 or fail_setup("--pp and --tg must be at least 1");

# --- the machine -----------------------------------------------------------

my $cpu = cpu_info();
my $load0 = loadavg();
my $membw = membw();
my ($peak_fp32, $peak_int8) = peaks($cpu);

printf "# CPU: %s, %d online cores, %s, %.3f GHz (%s)\n", $cpu->{model},
    $cpu->{cores}, $cpu->{isa}, $cpu->{ghz}, $cpu->{ghz_src};
my $lanes = $cpu->{isa} eq 'AVX-512' ? 16 : 8;
printf "# peak per core: FP32 FMA %.1f GFLOP/s (GHz x %d pipes x %d lanes "
     . "x 2), int8 %.1f GOP/s (GHz x %d pipes x %d byte pairs x 2, "
     . "vpmaddubsw)\n", $peak_fp32, $cpu->{pipes}, $lanes, $peak_int8,
    $cpu->{pipes}, 4 * $lanes;
printf "# streaming-read bandwidth (starling-membw): %s\n",
    join(', ', map { "$_ thr $membw->{$_} GB/s" } sort { $a <=> $b }
                   keys %$membw);
printf "# load average at start %.2f%s\n", $load0,
    $load0 > $cpu->{cores} ? "  ** machine busy: figures under contention **"
                           : '';
printf "# %d interleaved repetition(s), median; pp%d and tg%d\n\n",
    $o{reps}, $o{pp}, $o{tg};

# --- the runs ----------------------------------------------------------------

my (%res, %meta, @failed);
for my $f (@files) {
    for my $t (@threads) {
        for my $r (1 .. $o{reps}) {
            printf STDERR "$me: %s, %d thread(s), repetition %d of %d\n",
                base($f), $t, $r, $o{reps};
            run_starling($f, $t);
            run_llama($f, $t);
        }
    }
}
my $load1 = loadavg();

# --- the table ---------------------------------------------------------------

print "| file | type | thr | test | Starling t/s | llama.cpp t/s | ratio "
    . "| limit (Starling) |\n";
print "|---|---|---:|---|---:|---:|---:|---|\n";
for my $f (@files) {
    my $m = $meta{$f};
    for my $t (@threads) {
        for my $test ("pp$o{pp}", "tg$o{tg}") {
            my $s = median($res{$f}{$t}{$test}{starling});
            my $l = median($res{$f}{$t}{$test}{llama});
            printf "| %s | %s | %d | %s | %s | %s | %s | %s |\n",
                base($f), $m ? $m->{type} : '?', $t, $test, fmt_ts($s),
                fmt_ts($l), defined $s && defined $l && $l > 0
                    ? sprintf('%.2f', $s / $l) : '-',
                limit($m, $t, $test, $s);
        }
    }
}
printf "\n# load average at end %.2f%s\n", $load1,
    $load1 > $cpu->{cores} ? " (under contention)" : '';
print "# ratio = Starling / llama.cpp. decode limit: bytes read per token "
    . "(every weight but an untied token_embd table) x tok/s vs membw with "
    . "as many threads; prefill: 2 x the layers' weight count (no "
    . "embedding, no output head: only the last token's logits are made; "
    . "attention's QK/PV not counted) ops per token vs the cores' peak\n";
if (@failed) {
    printf STDERR "$me: %d run(s) failed (above); their cells say failed\n",
        scalar @failed;
    exit 1;
}
exit 0;

# --- helpers -----------------------------------------------------------------

sub base { my ($p) = @_; $p =~ s{.*/}{}; $p =~ s/\.gguf$//; return $p; }

sub median {
    my ($v) = @_;
    return undef unless $v && @$v;
    my @s = sort { $a <=> $b } @$v;
    my $n = @s;
    return $n % 2 ? $s[$n / 2] : ($s[$n / 2 - 1] + $s[$n / 2]) / 2;
}

sub fmt_ts {
    my ($v) = @_;
    return 'failed' unless defined $v;
    return $v >= 1000 ? sprintf('%.0f', $v) : sprintf('%.1f', $v);
}

sub limit {
    my ($m, $t, $test, $ts) = @_;
    return '-' unless $m && defined $ts;
    if ($test =~ /^tg/) {
        my $gbs = $m->{tg_bytes} * $ts / 1e9;
        my $bw = $membw->{$t};
        # weights that fit in the last-level cache are not read from DRAM
        return sprintf('%.1f GB/s from cache (%.1f MB < L3 %.0f MB)', $gbs,
                       $m->{tg_bytes} / 1e6, $cpu->{l3_bytes} / 1e6)
            if $m->{tg_bytes} < $cpu->{l3_bytes};
        return sprintf('%.1f GB/s streamed%s', $gbs,
            $bw ? sprintf(' = %.0f%% of %.1f GB/s', 100 * $gbs / $bw, $bw)
                : '');
    }
    my $float = $m->{type} =~ /\b(?:F32|F16|BF16)\b/;
    my $peak = ($float ? $peak_fp32 : $peak_int8) * $t;
    my $gops = 2 * $m->{pp_params} * $ts / 1e9;
    return sprintf('%.1f GOP/s = %.0f%% of %s peak %.0f', $gops,
                   100 * $gops / $peak, $float ? 'FP32' : 'int8', $peak);
}

# Runs a command; returns (rc, stdout, stderr tail).
sub run_cmd {
    my (@cmd) = @_;
    my $err = "/tmp/$me.$$.err";
    my $q = join ' ', map { my $a = $_; $a =~ s/'/'\\''/g; "'$a'" } @cmd;
    my $out = `$q 2>'$err'`;
    my $rc = $? == -1 ? 127 : ($? & 127 ? 128 + ($? & 127) : $? >> 8);
    my $tail = '';
    if (open my $fh, '<', $err) {
        my @l = <$fh>;
        close $fh;
        $tail = join '', @l > 5 ? @l[-5 .. -1] : @l;
    }
    unlink $err;
    return ($rc, $out // '', $tail);
}

sub record_failure {
    my ($what, $f, $t, $rc, $tail) = @_;
    $tail =~ s/\s+$//;
    $tail =~ s/\n/\n    /g;
    my $msg = sprintf('%s failed on %s with %d thread(s): %s', $what, $f, $t,
                      $rc == 127 ? 'could not be started'
                    : $rc > 128 ? 'killed by signal ' . ($rc - 128)
                    : "exit status $rc");
    $msg .= "\n    $tail" if $tail ne '';
    print STDERR "$me: $msg\n";
    push @failed, $msg;
}

sub run_starling {
    my ($f, $t) = @_;
    my ($rc, $out, $tail) = run_cmd($sb, '-m', $f, '-p', $o{pp}, '-n',
                                    $o{tg}, '-t', $t, '-r', 1, '--json');
    my $got = 0;
    for my $line (split /\n/, $out) {
        next unless $line =~ /^\{/;
        my $j = eval { JSON::PP::decode_json($line) } or next;
        $meta{$f} //= model_meta($f, $j);
        push @{ $res{$f}{$t}{ $j->{test} }{starling} }, $j->{avg_ts};
        $got++;
    }
    record_failure('starling-bench', $f, $t, $rc, $tail)
        if $rc != 0 || $got != 2;
}

sub run_llama {
    my ($f, $t) = @_;
    my ($rc, $out, $tail) = run_cmd($lb, '-m', $f, '-p', $o{pp}, '-n',
                                    $o{tg}, '-t', $t, '-r', 1, '-o', 'jsonl');
    my $got = 0;
    for my $line (split /\n/, $out) {
        next unless $line =~ /^\{/;
        my $j = eval { JSON::PP::decode_json($line) } or next;
        my $test = $j->{n_gen} ? "tg$j->{n_gen}" : "pp$j->{n_prompt}";
        push @{ $res{$f}{$t}{$test}{llama} }, $j->{avg_ts};
        $got++;
    }
    record_failure('llama-bench', $f, $t, $rc, $tail)
        if $rc != 0 || $got != 2;
}

# What a token costs, from the file's tensor table: decode reads every
# weight but an untied token_embd (one row of it); prefill multiplies
# every layer weight per token and the output head once per batch.
sub model_meta {
    my ($f, $j) = @_;
    my %m = (type => $j->{model_type}, tg_bytes => $j->{model_size},
             pp_params => $j->{model_n_params});
    my $t = gguf_tensors($f) or return \%m;
    my ($e, $out) = ($t->{'token_embd.weight'}, $t->{'output.weight'});
    $m{tg_bytes} -= $e->{bytes} if $e && $out;
    $m{pp_params} -= $e->{n} if $e;
    $m{pp_params} -= $out->{n} if $out;
    return \%m;
}

# name => { n => elements, bytes => size in the file } of a GGUF's
# tensors; undef when the file cannot be read as GGUF v2/v3 (then the
# limits use starling-bench's totals).
sub gguf_tensors {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return undef;
    my $buf = '';
    read($fh, $buf, 16 << 20);           # header + tensor table (or less)
    close $fh;
    my $pos = 0;
    my $take = sub {
        my ($n) = @_;
        die "short\n" if $pos + $n > length $buf;
        my $s = substr($buf, $pos, $n);
        $pos += $n;
        return $s;
    };
    my $u32 = sub { unpack 'V', $take->(4) };
    my $u64 = sub { unpack 'Q<', $take->(8) };
    my $str = sub { $take->($u64->()) };
    my %size = (0 => 1, 1 => 1, 2 => 2, 3 => 2, 4 => 4, 5 => 4, 6 => 4,
                7 => 1, 10 => 8, 11 => 8, 12 => 8);
    my $skip;
    $skip = sub {
        my ($type) = @_;
        if ($type == 8) { $str->(); return; }
        if ($type == 9) {
            my ($et, $n) = ($u32->(), $u64->());
            if ($size{$et}) { $take->($n * $size{$et}); return; }
            $skip->($et) for 1 .. $n;
            return;
        }
        die "type\n" unless $size{$type};
        $take->($size{$type});
    };
    my (%t, @order, $align);
    my $ok = eval {
        die "magic\n" unless $take->(4) eq 'GGUF';
        my $ver = $u32->();
        die "version\n" unless $ver == 2 || $ver == 3;
        my ($n_t, $n_kv) = ($u64->(), $u64->());
        $align = 32;
        for (1 .. $n_kv) {
            my $key = $str->();
            my $type = $u32->();
            if ($key eq 'general.alignment' && $type == 4) {
                $align = $u32->();
            } else {
                $skip->($type);
            }
        }
        for (1 .. $n_t) {
            my $name = $str->();
            my $nd = $u32->();
            my $n = 1;
            $n *= $u64->() for 1 .. $nd;
            $u32->();                                   # type
            my $off = $u64->();
            $t{$name} = { n => $n, off => $off };
            push @order, $name;
        }
        1;
    };
    return undef unless $ok && $align;
    # a tensor's bytes: up to the next one's offset (or the file's end)
    my $data = $pos + (-$pos % $align);
    my @by = sort { $t{$a}{off} <=> $t{$b}{off} } @order;
    for my $i (0 .. $#by) {
        my $end = $i < $#by ? $t{ $by[$i + 1] }{off} : (-s $f) - $data;
        $t{ $by[$i] }{bytes} = $end - $t{ $by[$i] }{off};
    }
    return \%t;
}

sub cpu_info {
    my %c = (model => 'unknown CPU', cores => 0, ghz => 0, flags => '',
             family => 0);
    if (open my $fh, '<', '/proc/cpuinfo') {
        my $mhz = 0;
        while (<$fh>) {
            $c{model} = $1 if /^model name\s*:\s*(.*\S)/;
            $c{flags} = $1 if /^flags\s*:\s*(.*)/;
            $c{family} = $1 if /^cpu family\s*:\s*(\d+)/;
            $c{cores}++ if /^processor\s*:/;
            $mhz = $1 if /^cpu MHz\s*:\s*([\d.]+)/ && $1 > $mhz;
        }
        close $fh;
        $c{ghz} = $mhz / 1000;
    }
    $c{ghz_src} = '/proc/cpuinfo cpu MHz; set CPU_GHZ= for the all-core clock';
    if ($ENV{CPU_GHZ}) {
        $c{ghz} = $ENV{CPU_GHZ};
        $c{ghz_src} = 'CPU_GHZ';
    }
    $c{cores} ||= 1;
    $c{l3_bytes} = 0;
    if (open my $l3, '<', '/sys/devices/system/cpu/cpu0/cache/index3/size') {
        my $v = <$l3> // '';
        close $l3;
        $c{l3_bytes} = $1 * ($2 eq 'M' ? 1 << 20 : $2 eq 'K' ? 1 << 10 : 1)
            if $v =~ /^(\d+)([KM]?)/;
    }
    my %f = map { $_ => 1 } split ' ', $c{flags};
    $c{isa} = $f{avx512f} ? 'AVX-512' : $f{avx2} ? 'AVX2 (no AVX-512)'
                                                 : 'no AVX2';
    # 256-bit FMA / vector-integer multiply pipes: 2 on Zen 2+ and on
    # Intel since Haswell; FMA_PIPES= overrides.
    $c{pipes} = $ENV{FMA_PIPES} || ($f{fma} ? 2 : 1);
    return \%c;
}

# Per-core peaks in G(FL)OP/s: FP32 FMA and int8 vpmaddubsw.
sub peaks {
    my ($c) = @_;
    my $lanes = $c->{isa} eq 'AVX-512' ? 16 : 8;
    return ($c->{ghz} * $c->{pipes} * $lanes * 2,
            $c->{ghz} * $c->{pipes} * $lanes * 4 * 2);
}

sub loadavg {
    open my $fh, '<', '/proc/loadavg' or return 0;
    my ($l) = split ' ', scalar <$fh>;
    close $fh;
    return $l;
}

sub membw {
    my ($rc, $out, $tail) = run_cmd($mb, '--size-mib', $o{'membw-mib'}, '-t',
                                    join(',', @threads), '-r', 3);
    fail_setup("starling-membw failed (exit status $rc): $tail") if $rc;
    my %bw;
    $bw{$1} = $2 while $out =~ /^\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|/mg;
    return \%bw;
}
