#!/usr/bin/perl
# Every synthetic GGUF file of ../shared/models/synthetic-2 and synthetic/
# (architectures and weight types of real downloads) served through the
# module: one nginx declares them all. Per file:
#  - a streamed /v1/chat/completions (greedy, max_tokens 8, include_usage)
#    answers 200 with chat.completion.chunk events, a usage chunk whose
#    counts add up and a final [DONE];
#  - the worker API's greedy token ids for both reference prompts equal
#    llama.cpp's (../shared/reference/generation/<set>/<stem>.promptN.json)
#    up to the first difference, and a difference is allowed only at a
#    near-tie: a step whose reference top-1/top-2 logit margin is below
#    the file's measured logit error (the tolerances of
#    t/unit/test_conformance.c), where our pick must still be one of
#    llama.cpp's top 5; the steps after it continue another text and are
#    not compared.
# Skips itself when ../shared (or its models) is absent.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Basename qw(basename);
use Test::More;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $shared = StarlingTest::shared_dir();
plan skip_all => "no synthetic models in $shared/models (../shared absent)"
    unless -d "$shared/models/synthetic-2";

my $n_tokens = 8;                  # chat stream
my $n_ids = 16;                    # greedy ids compared per prompt

# logit error per file (t/unit/test_conformance.c's tolerances, measured
# on this CPU kind with teacher forcing): below it a reference margin is
# a near-tie
my %tol = (
    'synth-llama-F32'          => 0.05,
    'synth-llama-BF16-embQ4_0' => 1.0,
    'synth-qwen2-F16-embQ4_0'  => 0.5,
    'synth-llama-Q4_K_M'       => 4.0,
    'synth-qwen3-Q4_K_M'       => 1.0,
    'synth-qwen3w-Q4_K_M'      => 8.0,
    'synth-gemma3-Q8_0'        => 0.25,
);
my $tol_default = 0.25;            # the synth-llama3-* files

my (@models, %seen);
for my $set ('synthetic-2', 'synthetic') {
    for my $f (sort glob("$shared/models/$set/*.gguf")) {
        (my $stem = basename($f)) =~ s/\.gguf\z//;
        next if $seen{$stem}++;
        (my $name = $stem) =~ s/[^A-Za-z0-9_-]/_/g;
        push @models, { file => $f, stem => $stem, set => $set, name => $name };
    }
}
plan skip_all => 'no GGUF files in ../shared/models/synthetic*' unless @models;

my $http = '';
my $server = "        location /v1/ { starling openai; }\n"
           . "        location / { starling worker; }\n";
for my $m (@models) {
    # small contexts and one sequence each: every model fits at once
    $http .= "    starling_model $m->{name} path=$m->{file} ctx=128 "
           . "max_seqs=1 threads=1;\n";
    $server .= "        location /w/$m->{name}/ { starling worker "
             . "model=$m->{name}; }\n";
}

my $t = StarlingTest->new(http => $http, server => $server)->start;

# reference { ids => [...], margins => [...] } for a prompt, or undef
sub reference {
    my ($m, $n) = @_;
    my $f = "$shared/reference/generation/$m->{set}/$m->{stem}.prompt$n.json";
    open my $fh, '<', $f or return;
    local $/;
    my $j = json_decode(scalar <$fh>);
    close $fh;
    return unless $j && $j->{greedy_ids} && $j->{top5_per_step};
    my @margins = map { @$_ >= 2 ? $_->[0][1] - $_->[1][1] : 1e9 }
                  @{$j->{top5_per_step}};
    my @top5 = map { [ map { $_->[0] } @$_ ] } @{$j->{top5_per_step}};
    return { prompt => $j->{prompt}, prompt_ids => $j->{prompt_ids},
             ids => $j->{greedy_ids}, margins => \@margins, top5 => \@top5 };
}

my ($compared, $possible) = (0, 0);

for my $m (@models) {
    my $id = $m->{name};

    # --- OpenAI chat stream --------------------------------------------
    my ($st, $hdr, $ev) = $t->stream('/v1/chat/completions',
        { model => $id, stream => JSON::PP::true, temperature => 0,
          max_tokens => $n_tokens,
          stream_options => { include_usage => JSON::PP::true },
          messages => [ { role => 'user', content => 'Tell me a story.' } ] });
    is($st, 200, "$id: chat stream 200");
    like($hdr->{'content-type'} // '', qr{^text/event-stream}, "$id: SSE");
    my @chunks = map { $_->{json} } grep { $_->{json} } @$ev;
    ok(@chunks >= 2 && !grep({ ($_->{object} // '') ne 'chat.completion.chunk' }
                             @chunks),
       "$id: chat.completion.chunk events");
    is($ev->[-1]{data}, '[DONE]', "$id: ends with [DONE]");
    my $u = @chunks ? $chunks[-1]{usage} : undef;
    my ($fin) = grep { defined } map { $_->{choices}[0]{finish_reason} }
                grep { @{$_->{choices} // []} } @chunks;
    ok($u && $u->{prompt_tokens} > 0 && $u->{completion_tokens} >= 1
       && $u->{completion_tokens} <= $n_tokens
       && $u->{total_tokens} == $u->{prompt_tokens} + $u->{completion_tokens}
       && (($fin // '') ne 'length' || $u->{completion_tokens} == $n_tokens),
       "$id: usage adds up ("
       . ($u ? "$u->{prompt_tokens} + $u->{completion_tokens}" : 'none')
       . ', ' . ($fin // 'no finish_reason') . ')');

    # --- greedy ids vs llama.cpp ---------------------------------------
    for my $n (1, 2) {
        my $ref = reference($m, $n) or next;
        my ($wst, undef, $wev) = $t->stream("/w/$id/execute",
            { job_id => "$id-$n", prompt => $ref->{prompt},
              max_tokens => $n_ids, temperature => 0,
              ignore_eos => JSON::PP::true });
        my @ids = map { $_->{json}{id} }
                  grep { ($_->{event} // '') eq 'token' } @$wev;
        my ($end) = grep { ($_->{event} // '') eq 'end' } @$wev;
        my ($met) = grep { ($_->{event} // '') eq 'metrics' } @$wev;
        ok($wst == 200 && $end && @ids == $n_ids,
           "$id prompt $n: $n_ids tokens, then end");
        is($met ? $met->{json}{prompt_tokens} : undef,
           scalar @{$ref->{prompt_ids}},
           "$id prompt $n: prompt tokens as llama.cpp's");
        my $tol = $tol{$m->{stem}} // $tol_default;
        my $k = 0;
        $k++ while $k < @ids && $k < @{$ref->{ids}}
                   && $ids[$k] == $ref->{ids}[$k];
        if ($k >= @ids || $k >= @{$ref->{ids}}) {
            pass("$id prompt $n: all $k greedy ids equal llama.cpp's");
        } else {
            my $mg = $ref->{margins}[$k];
            ok($mg < $tol && grep({ $_ == $ids[$k] } @{$ref->{top5}[$k]}),
               "$id prompt $n: first $k greedy ids equal llama.cpp's, then "
               . "a near-tie (margin $mg < $tol, our $ids[$k] in its top 5)");
        }
        $compared += $k;
        $possible += @ids;
    }
}
# near-ties excuse a divergence, not most of the comparison
ok($possible > 0 && $compared >= $possible * 3 / 4,
   "greedy ids equal llama.cpp's for $compared of $possible steps");

$t->stop;
$t->check_error_log;

done_testing();
